package schema

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// fencedJSON matches a ```json block of a Markdown file; group 1 is its text.
var fencedJSON = regexp.MustCompile("(?ms)^```json\n(.*?)^```")

// readmeDocs returns every fenced json block of README.md, each split into
// the JSON documents it holds (a block may show several, one after the
// other).
func readmeDocs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, m := range fencedJSON.FindAllStringSubmatch(string(b), -1) {
		dec := json.NewDecoder(strings.NewReader(m[1]))
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatalf("README.md: a json block is not JSON: %v\n%s", err, m[1])
			}
			docs = append(docs, string(raw))
		}
	}
	return docs
}

// isEvent decides by content whether a README example is an inbound event
// (the gateway stamps every event with received_at; no item has one) or an
// outbound item.
func isEvent(doc string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(doc), &m) != nil {
		return false
	}
	_, ok := m["received_at"]
	return ok
}

// Every JSON example in README.md is a valid item or event.
func TestREADMEExamplesValidate(t *testing.T) {
	docs := readmeDocs(t)
	var items, events int
	for _, d := range docs {
		var err error
		if isEvent(d) {
			events++
			err = ValidateEvent([]byte(d))
		} else {
			items++
			err = ValidateItem([]byte(d))
		}
		if err != nil {
			t.Errorf("README example %s: %v", d, err)
		}
	}
	t.Logf("%d items and %d events in README.md", items, events)
	if items == 0 || events == 0 {
		t.Fatalf("README.md shows %d item and %d event examples in json blocks; the extraction found too few", items, events)
	}
}

// The examples inside asyncapi.yaml validate too.
func TestAsyncAPIExamplesValidate(t *testing.T) {
	doc := loadAsyncAPI(t)
	n := 0
	for name, m := range doc.Components.Messages {
		for _, ex := range m.Examples {
			b, err := json.Marshal(ex.Payload)
			if err != nil {
				t.Fatal(err)
			}
			n++
			if name == "item" {
				err = ValidateItem(b)
			} else {
				err = ValidateEvent(b)
			}
			if err != nil {
				t.Errorf("asyncapi.yaml: example %q of %s: %v", ex.Name, name, err)
			}
		}
	}
	if n == 0 {
		t.Fatal("asyncapi.yaml has no examples")
	}
}
