-- Prosody (0.12+) configuration for the xmppgw gateway in component mode
-- (XEP-0114, "jabber:component:accept").
--
-- How to use it
--   1. Copy the GLOBAL part into the global section of prosody.cfg.lua, that is
--      above the first VirtualHost or Component line (Prosody reads
--      component_ports and component_interfaces only from the global section).
--   2. Copy the COMPONENT part anywhere after it.
--   3. Replace gw.example.org with the component's domain (xmpp.domain in the
--      gateway's config) and change-me with a long random secret
--      (xmpp.secret, or the XMPPGW_XMPP_SECRET environment variable), e.g.
--      `openssl rand -hex 32`.
--   4. Make gw.example.org resolvable for remote servers (a DNS record pointing
--      at this Prosody) if users of other servers should reach the gateway.
--   5. `prosodyctl check config`, then `prosodyctl reload` (a new component
--      port needs a restart).
--
-- The integration tests build their Prosody config from this very file: they
-- replace the quoted domain and secret of the Component section and the port
-- of component_ports, and fail if one is missing: keep those literals.

---------------------------------------------------------------------- GLOBAL

-- The port the gateway dials (xmpp.server: 127.0.0.1:5347). The component
-- protocol authenticates with a shared secret over an unencrypted stream:
-- listen on loopback only, or put the gateway on a private network.
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

-- The gateway relies on no special module: message routing, presence and
-- iq routing to components are built into Prosody. For client users these
-- matter:
--   mod_roster, mod_presence  subscriptions to gateway contacts
--                             (presence.subscriptions: auto) survive restarts;
--   mod_offline               messages the gateway sends to offline users are
--                             stored and delivered on login. The internal
--                             storage keeps at most storage_archive_item_limit
--                             (default 10,000) messages per user; raise it if
--                             your workers can queue more for one user;
--   mod_ping                  client mode only: the gateway pings the
--                             server's domain as a delivery barrier and
--                             keepalive. In component mode the barrier ping
--                             is addressed to the component's own domain and
--                             routed back to it by Prosody, which needs no
--                             module.
-- mod_limits (if enabled) throttles c2s/s2s connections, not components, but
-- users receiving many notices may be slowed by it on their own c2s stream.

------------------------------------------------------------------- COMPONENT

Component "gw.example.org"
	-- The XEP-0114 shared secret; the same value as xmpp.secret.
	component_secret = "change-me"

	-- Largest stanza Prosody accepts from the gateway (default: the
	-- s2s_stanza_size_limit, 512 KiB). A message carries outbound.max_text_bytes
	-- (default 64 KiB) of text, XML-escaped (up to 5 bytes per byte for "&"),
	-- plus its JSON payload: 1 MiB leaves room for both. Clients have their
	-- own limit (c2s_stanza_size_limit, default 256 KiB) on what THEY send.
	component_stanza_size_limit = 1024 * 1024

	-- Prosody checks that every stanza's "from" is the component's domain or
	-- a JID of it (the gateway never sends anything else); keep it on.
	validate_from_addresses = true

	-- A second connection for the component is refused (Prosody's default,
	-- "kick_new"): a second gateway on the same component and queues is a
	-- hot standby that retries every few seconds and takes over when the
	-- first one goes away. ("kick_old" would make two gateways replace each
	-- other in a loop.) After a network cut Prosody frees the old stream
	-- when its TCP connection times out. With presence.lease_ttl (the
	-- gateways hold the component by a lease in PostgreSQL, and only the
	-- holder connects) set "kick_old" instead: the new holder then replaces
	-- a half-open connection of a stalled one at once.
	component_conflict_resolve = "kick_new"
