package schema

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// asyncAPI is the part of asyncapi.yaml the tests check.
type asyncAPI struct {
	AsyncAPI string `yaml:"asyncapi"`
	Channels map[string]struct {
		Address  string                       `yaml:"address"`
		Messages map[string]map[string]string `yaml:"messages"`
		Bindings struct {
			AMQP struct {
				Is    string `yaml:"is"`
				Queue struct {
					Name    string `yaml:"name"`
					Durable bool   `yaml:"durable"`
				} `yaml:"queue"`
			} `yaml:"amqp"`
		} `yaml:"bindings"`
	} `yaml:"channels"`
	Operations map[string]struct {
		Action  string            `yaml:"action"`
		Channel map[string]string `yaml:"channel"`
	} `yaml:"operations"`
	Components struct {
		Messages map[string]struct {
			ContentType string `yaml:"contentType"`
			Headers     struct {
				Properties map[string]any `yaml:"properties"`
			} `yaml:"headers"`
			Payload struct {
				SchemaFormat string            `yaml:"schemaFormat"`
				Schema       map[string]string `yaml:"schema"`
			} `yaml:"payload"`
			Examples []struct {
				Name    string `yaml:"name"`
				Payload any    `yaml:"payload"`
			} `yaml:"examples"`
		} `yaml:"messages"`
	} `yaml:"components"`
}

func loadAsyncAPI(t *testing.T) *asyncAPI {
	t.Helper()
	b, err := fs.ReadFile(FS, "asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncAPI
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	return &doc
}

// The AsyncAPI document names the gateway's default queues, carries every
// event kind on the inbound channels, points every payload at a schema file
// that exists, and gives dead letters the x-xmppgw-error header.
func TestAsyncAPIDescribesTheQueues(t *testing.T) {
	doc := loadAsyncAPI(t)
	if doc.AsyncAPI != "3.0.0" {
		t.Fatalf("asyncapi: %q, want 3.0.0", doc.AsyncAPI)
	}
	// The defaults of amqp.out_queue, amqp.in_queue, amqp.dead_letter_queue.
	for ch, queue := range map[string]string{"out": "xmpp-out", "in": "xmpp-in", "dead": "xmpp-out.dead", "route": "{queue}"} {
		c, ok := doc.Channels[ch]
		if !ok {
			t.Errorf("no channel %q", ch)
			continue
		}
		if c.Address != queue || c.Bindings.AMQP.Is != "queue" || !c.Bindings.AMQP.Queue.Durable {
			t.Errorf("channel %s: address %q, amqp binding %+v; want the durable queue %s", ch, c.Address, c.Bindings.AMQP, queue)
		}
		if ch != "route" && c.Bindings.AMQP.Queue.Name != queue {
			t.Errorf("channel %s: queue name %q, want %s", ch, c.Bindings.AMQP.Queue.Name, queue)
		}
	}
	for _, ch := range []string{"in", "route"} {
		var kinds []string
		for k, ref := range doc.Channels[ch].Messages {
			if ref["$ref"] != "#/components/messages/"+k {
				t.Errorf("channel %s: message %s refers to %q", ch, k, ref["$ref"])
			}
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		want := slices.Sorted(slices.Values(EventKinds))
		if !slices.Equal(kinds, want) {
			t.Errorf("channel %s carries %v, want every event kind %v", ch, kinds, want)
		}
	}
	actions := map[string]string{}
	for name, op := range doc.Operations {
		actions[op.Channel["$ref"]] = op.Action
		if _, ok := doc.Channels[strings.TrimPrefix(op.Channel["$ref"], "#/channels/")]; !ok {
			t.Errorf("operation %s: no channel %q", name, op.Channel["$ref"])
		}
	}
	for ch, want := range map[string]string{"out": "receive", "in": "send", "route": "send", "dead": "send"} {
		if got := actions["#/channels/"+ch]; got != want {
			t.Errorf("the gateway's operation on channel %s: %q, want %q", ch, got, want)
		}
	}
	for name, m := range doc.Components.Messages {
		if m.ContentType != "application/json" {
			t.Errorf("message %s: content type %q", name, m.ContentType)
		}
		if name == "deadLetter" {
			if _, ok := m.Headers.Properties["x-xmppgw-error"]; !ok {
				t.Error("dead letters lack the header x-xmppgw-error")
			}
			continue
		}
		ref := m.Payload.Schema["$ref"]
		if m.Payload.SchemaFormat != "application/schema+json;version=draft-2020-12" || !strings.HasPrefix(ref, "./") {
			t.Errorf("message %s: payload %+v", name, m.Payload)
			continue
		}
		if _, err := fs.Stat(FS, strings.TrimPrefix(ref, "./")); err != nil {
			t.Errorf("message %s: payload schema %s: %v", name, ref, err)
		}
		want := "./events/" + name + ".schema.json"
		if name == "item" {
			want = "./item.schema.json"
		}
		if ref != want {
			t.Errorf("message %s: payload schema %s, want %s", name, ref, want)
		}
	}
}
