// Package queue is the gateway's side of RabbitMQ: topology declaration
// ([Declare]), one consuming connection ([Consumer]) and one publishing
// connection with publisher confirms, mandatory returns and flow control
// ([Publisher]).
//
// Every object owns exactly one AMQP connection for its whole life and never
// reconnects: when the connection or its channel dies, Done is closed and Err
// says why. The gateway supervises these objects and redials with backoff,
// forgetting all delivery tags of the dead connection (the broker requeues
// whatever was unacknowledged).
//
// URLs are never logged or returned with their password: see [RedactURL].
// Message bodies are logged at debug level at most.
package queue
