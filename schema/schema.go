package schema

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// printer renders the validator's messages.
var printer = message.NewPrinter(language.English)

// FS holds the schema files: item.schema.json, event.schema.json,
// defs.schema.json, events/<kind>.schema.json and asyncapi.yaml.
//
//go:embed *.json events/*.json asyncapi.yaml
var FS embed.FS

// EventKinds are the kinds of inbound events, each with its schema
// events/<kind>.schema.json.
var EventKinds = []string{"message", "error", "presence", "subscription", "receipt"}

// ErrInvalid is wrapped by every error of ValidateItem and ValidateEvent.
var ErrInvalid = errors.New("schema: invalid")

// Error says why a body does not match its schema.
type Error struct {
	Schema  string   // the file, e.g. "item.schema.json"
	Reasons []string // "/pointer: message", one per failed keyword
}

// Error returns the schema and the reasons on one line.
func (e *Error) Error() string {
	return "schema: " + e.Schema + ": " + strings.Join(e.Reasons, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *Error) Unwrap() error { return ErrInvalid }

// base is the URL the files are loaded under: not fetched, only a name.
const base = "file:///xmppgw/schema/"

var compiled = sync.OnceValues(compile)

type schemas struct {
	item   *jsonschema.Schema
	event  *jsonschema.Schema
	byKind map[string]*jsonschema.Schema
}

// compile compiles every schema file from FS. Formats (date-time) are
// asserted, as the gateway parses enqueued_at.
func compile() (*schemas, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.DefaultDraft(jsonschema.Draft2020)
	err := fs.WalkDir(FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		b, err := FS.ReadFile(path)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("schema: %s: %w", path, err)
		}
		return c.AddResource(base+path, doc)
	})
	if err != nil {
		return nil, err
	}
	s := &schemas{byKind: make(map[string]*jsonschema.Schema)}
	if s.item, err = c.Compile(base + "item.schema.json"); err != nil {
		return nil, err
	}
	if s.event, err = c.Compile(base + "event.schema.json"); err != nil {
		return nil, err
	}
	for _, k := range EventKinds {
		if s.byKind[k], err = c.Compile(base + "events/" + k + ".schema.json"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ValidateItem checks an outbound item (an AMQP message body) against
// item.schema.json. A nil error means the schema accepts it; the gateway
// may still dead-letter it for what a schema cannot judge (see the package
// documentation).
func ValidateItem(body []byte) error {
	s, err := compiled()
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return &Error{Schema: "item.schema.json", Reasons: []string{"not JSON: " + err.Error()}}
	}
	return validate(s.item, "item.schema.json", inst)
}

// ValidateEvent checks an inbound event (an AMQP message body) against the
// schema of its kind, events/<kind>.schema.json (event.schema.json when it
// has no known kind).
func ValidateEvent(body []byte) error {
	s, err := compiled()
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return &Error{Schema: "event.schema.json", Reasons: []string{"not JSON: " + err.Error()}}
	}
	if obj, ok := inst.(map[string]any); ok {
		if kind, ok := obj["kind"].(string); ok && s.byKind[kind] != nil {
			return validate(s.byKind[kind], "events/"+kind+".schema.json", inst)
		}
	}
	return validate(s.event, "event.schema.json", inst)
}

// validate checks inst against sch, named name in errors.
func validate(sch *jsonschema.Schema, name string, inst any) error {
	err := sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Error{Schema: name, Reasons: []string{err.Error()}}
	}
	return &Error{Schema: name, Reasons: reasons(ve)}
}

// reasons lists the leaf failures of ve, "/pointer: message", sorted and
// without repeats.
func reasons(ve *jsonschema.ValidationError) []string {
	seen := make(map[string]bool)
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			seen["/"+strings.Join(e.InstanceLocation, "/")+": "+e.ErrorKind.LocalizedString(printer)] = true
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	out := make([]string, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}
