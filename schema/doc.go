// Package schema holds the machine-readable formats of the gateway's
// queues: JSON Schemas (draft 2020-12) of the outbound item
// (item.schema.json) and of every inbound event kind (events/*.schema.json,
// dispatched by kind in event.schema.json), and an AsyncAPI 3.0 document
// of the queues and their messages (asyncapi.yaml). The files are embedded
// (FS) and compiled once; ValidateItem and ValidateEvent check a body
// against them.
//
// The schemas are as strict as the gateway where a schema can judge:
// item members are the ones stanza.Encoder reads (unknown members are
// allowed, null counts as absent, strings must be characters XML can
// carry, the combinations the encoder refuses are refused); events are
// exactly what stanza.Event.AppendJSON writes (closed objects, empty fields
// omitted, received_at with microseconds in UTC). What a schema cannot
// judge the gateway still checks: JID syntax and domains, byte bounds that
// depend on the configuration, a member given twice, the raw stanza's XML.
//
// The package imports no package of the gateway: workers' tests and tools
// can use it alone.
package schema
