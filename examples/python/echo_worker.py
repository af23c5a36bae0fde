#!/usr/bin/python3
"""An xmppgw worker in Python (pika): answers "ping" with "pong".

It consumes events from the gateway's in queue with manual acks (at most
PREFETCH unacknowledged), answers each message event with an item on the
out queue ("pong" to "ping", the text itself to anything else), published
persistent with publisher confirms, and acknowledges the event only after
the broker confirmed the answer: a crash in between redelivers the event,
and the answer goes out again with the same stanza id, which clients use to
drop the duplicate. SIGTERM or SIGINT stops it cleanly (exit 0).

Configuration, by the gateway's own variable names:
  XMPPGW_AMQP_URL        broker (default amqp://guest:guest@127.0.0.1:5672/)
  XMPPGW_AMQP_IN_QUEUE   events to read (default xmpp-in)
  XMPPGW_AMQP_OUT_QUEUE  items to write (default xmpp-out)
"""

import hashlib
import json
import logging
import os
import signal
import sys

import pika
import pika.exceptions
import pika.spec

AMQP_URL = os.environ.get("XMPPGW_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
IN_QUEUE = os.environ.get("XMPPGW_AMQP_IN_QUEUE", "xmpp-in")
OUT_QUEUE = os.environ.get("XMPPGW_AMQP_OUT_QUEUE", "xmpp-out")
PREFETCH = 16

log = logging.getLogger("echo-worker")


def answer(event):
    """Returns the item that answers an event, or None for no answer."""
    if event.get("kind") != "message" or "from" not in event:
        return None
    if "encrypted" in event:
        text = "I cannot read end-to-end encrypted messages; please write to me unencrypted."
    elif "text" in event:
        text = "pong" if event["text"].strip() == "ping" else event["text"]
    else:
        return None  # a payload-only message
    item = {"text": text}
    if event.get("type") == "groupchat":
        if text != "pong" or "room" not in event:
            return None  # in a room, answer ping only
        item.update(target=event["room"], type="groupchat")
    else:
        item.update(target=event["from"], type="chat")
        if "to" in event:
            item["from"] = event["to"]  # answer as the address written to
    if "thread" in event:
        item["thread"] = event["thread"]
    # A stable id: a redelivered event gets the same answer id.
    item["id"] = "echo-" + hashlib.sha256((event["from"] + "\0" + event["id"]).encode()).hexdigest()[:32]
    return item


class Worker:
    def __init__(self):
        self.conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        self.sub = self.conn.channel()
        self.sub.basic_qos(prefetch_count=PREFETCH)
        self.pub = self.conn.channel()
        self.pub.confirm_delivery()  # basic_publish now waits for the broker's confirm
        self.busy = False  # answering an event
        self.stopping = False  # SIGTERM or SIGINT arrived

    def on_event(self, ch, method, props, body):
        self.busy = True
        try:
            self.handle(ch, method, body)
        finally:
            self.busy = False
        if self.stopping:
            self.sub.stop_consuming()

    def handle(self, ch, method, body):
        try:
            event = json.loads(body)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except ValueError:
            log.warning("dropping a delivery that is not a JSON object")
            ch.basic_reject(method.delivery_tag, requeue=False)
            return
        item = answer(event)
        if item is not None:
            # mandatory: an out queue that does not exist is an error, not a silent drop
            self.pub.basic_publish(
                exchange="",
                routing_key=OUT_QUEUE,
                body=json.dumps(item, ensure_ascii=False).encode(),
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.spec.PERSISTENT_DELIVERY_MODE,
                    message_id=item["id"],
                ),
                mandatory=True,
            )
            log.info("answered %s event %s", event.get("type"), event.get("id"))
        ch.basic_ack(method.delivery_tag)

    def stop(self):
        # Called from the signal handler: hand the stop to pika's loop.
        self.conn.add_callback_threadsafe(self.request_stop)

    def request_stop(self):
        # pika may run this while an event is being answered (inside the
        # wait for a publisher confirm): then the event is finished first.
        self.stopping = True
        if not self.busy:
            self.sub.stop_consuming()

    def run(self):
        self.sub.basic_consume(IN_QUEUE, self.on_event, auto_ack=False)
        log.info("consuming %s, answering to %s", IN_QUEUE, OUT_QUEUE)
        self.sub.start_consuming()  # returns after stop(); unacked events go back to the queue
        self.conn.close()
        log.info("stopped")


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        worker = Worker()
    except pika.exceptions.AMQPError as e:
        log.error("cannot connect to the broker: %r", e)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: worker.stop())
    try:
        worker.run()
    except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as e:
        log.error("the broker refused an answer (%s); exiting, the event will be redelivered", type(e).__name__)
        return 1
    except pika.exceptions.AMQPError as e:
        log.error("broker connection failed: %r", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
