package presence

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL schema, in the first schema of the connection's
// search_path (set it in the URL: ?search_path=xmppgw):
//
//	xmppgw_presence_version (version, applied_at): one row per migration
//	  applied.
//	xmppgw_subscribers (component, local_jid, contact, created_at): contact
//	  is subscribed to local_jid ("from" in local_jid's roster terms).
//	xmppgw_subscriptions (component, local_jid, contact, state,
//	  updated_at): local_jid is subscribed to contact, state pending (we
//	  asked) or approved.
//
// component is the component's domain (xmpp.domain): the gateways of one
// component share its rows, and one database may hold several components.
// JIDs are bare. Migrations run in one transaction under an advisory lock
// (pg_advisory_xact_lock), so that gateways starting at once apply each
// exactly once; a database migrated by a newer xmppgw is refused.
var pgMigrations = []string{
	1: `CREATE TABLE xmppgw_subscribers (
		component  text NOT NULL,
		local_jid  text NOT NULL,
		contact    text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (component, local_jid, contact)
	);
	CREATE TABLE xmppgw_subscriptions (
		component  text NOT NULL,
		local_jid  text NOT NULL,
		contact    text NOT NULL,
		state      text NOT NULL CHECK (state IN ('pending', 'approved')),
		updated_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (component, local_jid, contact)
	)`,
}

// pgSchemaVersion is the version this code reads and writes.
var pgSchemaVersion = len(pgMigrations) - 1

// errSchemaNewer is a database migrated by a newer xmppgw.
var errSchemaNewer = errors.New("migrated by a newer xmppgw")

// migrate creates the tables or brings them to pgSchemaVersion; applied
// twice it changes nothing.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var schema *string
		if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return err
		}
		if schema == nil {
			return errors.New("no schema to create the tables in: the search_path names no schema that exists")
		}
		// One migration at a time per schema, whatever the number of
		// gateways starting.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('xmppgw presence schema ' || $1::text))`, *schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS xmppgw_presence_version (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM xmppgw_presence_version`).Scan(&v); err != nil {
			return err
		}
		if v > pgSchemaVersion {
			return fmt.Errorf("schema %s: version %d, %w (this one knows %d)", *schema, v, errSchemaNewer, pgSchemaVersion)
		}
		for n := v + 1; n <= pgSchemaVersion; n++ {
			if _, err := tx.Exec(ctx, pgMigrations[n]); err != nil {
				return fmt.Errorf("migration %d: %w", n, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO xmppgw_presence_version (version) VALUES ($1)`, n); err != nil {
				return err
			}
		}
		return nil
	})
}
