#!/usr/bin/env node
// An xmppgw worker in Node.js (amqplib): answers "ping" with "pong".
//
// It consumes events from the gateway's in queue with manual acks (at most
// PREFETCH unacknowledged), answers each message event with an item on the
// out queue ("pong" to "ping", the text itself to anything else), published
// persistent with publisher confirms, and acknowledges the event only after
// the broker confirmed the answer: a crash in between redelivers the event,
// and the answer goes out again with the same stanza id, which clients use
// to drop the duplicate. SIGTERM or SIGINT stops it cleanly (exit 0).
//
// Configuration, by the gateway's own variable names:
//   XMPPGW_AMQP_URL        broker (default amqp://guest:guest@127.0.0.1:5672/)
//   XMPPGW_AMQP_IN_QUEUE   events to read (default xmpp-in)
//   XMPPGW_AMQP_OUT_QUEUE  items to write (default xmpp-out)
'use strict';

const crypto = require('node:crypto');
const amqp = require('amqplib');

const AMQP_URL = process.env.XMPPGW_AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/';
const IN_QUEUE = process.env.XMPPGW_AMQP_IN_QUEUE || 'xmpp-in';
const OUT_QUEUE = process.env.XMPPGW_AMQP_OUT_QUEUE || 'xmpp-out';
const PREFETCH = 16;

const log = (msg) => console.error(`${new Date().toISOString()} echo-worker ${msg}`);

// answer returns the item that answers an event, or null for no answer.
function answer(event) {
  if (event === null || typeof event !== 'object' || event.kind !== 'message' || !event.from) return null;
  let text;
  if (event.encrypted !== undefined) {
    text = 'I cannot read end-to-end encrypted messages; please write to me unencrypted.';
  } else if (typeof event.text === 'string') {
    text = event.text.trim() === 'ping' ? 'pong' : event.text;
  } else {
    return null; // a payload-only message
  }
  const item = { text };
  if (event.type === 'groupchat') {
    if (text !== 'pong' || !event.room) return null; // in a room, answer ping only
    Object.assign(item, { target: event.room, type: 'groupchat' });
  } else {
    Object.assign(item, { target: event.from, type: 'chat' });
    if (event.to) item.from = event.to; // answer as the address written to
  }
  if (event.thread) item.thread = event.thread;
  // A stable id: a redelivered event gets the same answer id.
  item.id = 'echo-' + crypto.createHash('sha256').update(`${event.from}\0${event.id}`).digest('hex').slice(0, 32);
  return item;
}

async function main() {
  const conn = await amqp.connect(AMQP_URL);
  conn.on('error', (err) => log(`connection error: ${err.message}`));
  const sub = await conn.createChannel();
  await sub.prefetch(PREFETCH);
  const pub = await conn.createConfirmChannel();
  // mandatory: an out queue that does not exist is an error, not a silent
  // drop; a returned message comes before its confirm.
  const returned = new Set();
  pub.on('return', (msg) => returned.add(msg.properties.messageId));

  let failed = false;
  let stopping = null;
  const inFlight = new Set();

  async function onEvent(msg) {
    let event;
    try {
      event = JSON.parse(msg.content.toString('utf8'));
    } catch {
      log('dropping a delivery that is not JSON');
      sub.reject(msg, false);
      return;
    }
    const item = answer(event);
    if (item) {
      try {
        await new Promise((resolve, reject) => {
          pub.sendToQueue(OUT_QUEUE, Buffer.from(JSON.stringify(item)), {
            contentType: 'application/json',
            persistent: true,
            messageId: item.id,
            mandatory: true,
          }, (err) => (err ? reject(err) : resolve()));
        });
        if (returned.delete(item.id)) throw new Error(`no queue ${OUT_QUEUE}`);
      } catch (err) {
        // leave the event unacknowledged: the broker redelivers it
        log(`the broker refused an answer (${err.message}); stopping`);
        failed = true;
        stop();
        return;
      }
      log(`answered ${event.type} event ${event.id}`);
    }
    sub.ack(msg);
  }

  const { consumerTag } = await sub.consume(IN_QUEUE, (msg) => {
    if (msg === null) { // the broker cancelled the consumer (queue deleted)
      log(`${IN_QUEUE} went away`);
      failed = true;
      stop();
      return;
    }
    const p = onEvent(msg).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }, { noAck: false });
  log(`consuming ${IN_QUEUE}, answering to ${OUT_QUEUE}`);

  // stop cancels the consumer, lets the events in hand finish, and closes;
  // unacknowledged events go back to the queue.
  function stop() {
    stopping ??= (async () => {
      await sub.cancel(consumerTag).catch(() => {});
      await Promise.allSettled([...inFlight]);
      // Closing the channels first: their close follows their acks on the
      // wire, and close-ok means the broker has handled them.
      await sub.close().catch(() => {});
      await pub.close().catch(() => {});
      await conn.close().catch(() => {});
      log('stopped');
      process.exitCode = failed ? 1 : 0;
    })();
    return stopping;
  }
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  conn.on('close', () => {
    if (!stopping) {
      log('connection closed by the broker');
      process.exitCode = 1;
    }
  });
}

main().catch((err) => {
  log(`cannot start: ${err.message}`);
  process.exitCode = 1;
});
