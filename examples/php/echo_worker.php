<?php
// An xmppgw worker in PHP (php-amqplib): answers "ping" with "pong".
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
//
// php-amqplib as Debian installs it (apt install php-cli php-amqplib); with
// Composer, require vendor/autoload.php instead.

declare(strict_types=1);

require_once 'PhpAmqpLib/autoload.php'; // /usr/share/php is on Debian's include_path

use PhpAmqpLib\Connection\AMQPConnectionConfig;
use PhpAmqpLib\Connection\AMQPConnectionFactory;
use PhpAmqpLib\Exception\AMQPTimeoutException;
use PhpAmqpLib\Message\AMQPMessage;

const PREFETCH = 16;

function env(string $name, string $default): string
{
    $v = getenv($name);
    return $v === false || $v === '' ? $default : $v;
}

function logline(string $msg): void
{
    fwrite(STDERR, date('c') . " echo-worker $msg\n");
}

// connectionConfig reads an AMQP URI: amqp[s]://user:pass@host:port/vhost.
function connectionConfig(string $url): AMQPConnectionConfig
{
    $u = parse_url($url);
    if ($u === false || !isset($u['scheme'], $u['host']) || !in_array($u['scheme'], ['amqp', 'amqps'], true)) {
        throw new InvalidArgumentException('XMPPGW_AMQP_URL is not an amqp:// or amqps:// URL');
    }
    $secure = $u['scheme'] === 'amqps';
    $path = $u['path'] ?? '';
    $c = new AMQPConnectionConfig();
    $c->setHost($u['host']);
    $c->setPort($u['port'] ?? ($secure ? 5671 : 5672));
    $c->setUser(rawurldecode($u['user'] ?? 'guest'));
    $c->setPassword(rawurldecode($u['pass'] ?? 'guest'));
    $c->setVhost($path === '' || $path === '/' ? '/' : rawurldecode(substr($path, 1)));
    $c->setIsSecure($secure);
    return $c;
}

// answer returns the item that answers an event, or null for no answer.
function answer(array $event): ?array
{
    if (($event['kind'] ?? '') !== 'message' || !isset($event['from'])) {
        return null;
    }
    if (isset($event['encrypted'])) {
        $text = 'I cannot read end-to-end encrypted messages; please write to me unencrypted.';
    } elseif (isset($event['text'])) {
        $text = trim($event['text']) === 'ping' ? 'pong' : $event['text'];
    } else {
        return null; // a payload-only message
    }
    $item = ['text' => $text];
    if (($event['type'] ?? '') === 'groupchat') {
        if ($text !== 'pong' || !isset($event['room'])) {
            return null; // in a room, answer ping only
        }
        $item += ['target' => $event['room'], 'type' => 'groupchat'];
    } else {
        $item += ['target' => $event['from'], 'type' => 'chat'];
        if (isset($event['to'])) {
            $item['from'] = $event['to']; // answer as the address written to
        }
    }
    if (isset($event['thread'])) {
        $item['thread'] = $event['thread'];
    }
    // A stable id: a redelivered event gets the same answer id.
    $item['id'] = 'echo-' . substr(hash('sha256', $event['from'] . "\0" . $event['id']), 0, 32);
    return $item;
}

$outQueue = env('XMPPGW_AMQP_OUT_QUEUE', 'xmpp-out');
$inQueue = env('XMPPGW_AMQP_IN_QUEUE', 'xmpp-in');

try {
    $conn = AMQPConnectionFactory::create(connectionConfig(env('XMPPGW_AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672/')));
} catch (Throwable $e) {
    logline('cannot connect to the broker: ' . get_class($e));
    exit(1);
}
$sub = $conn->channel();
$sub->basic_qos(0, PREFETCH, false);
$pub = $conn->channel();
$pub->confirm_select();
$outcome = null; // of the answer being published: 'ack', 'nack' or 'returned'
$pub->set_ack_handler(function () use (&$outcome) { $outcome ??= 'ack'; });
$pub->set_nack_handler(function () use (&$outcome) { $outcome = 'nack'; });
// mandatory: an out queue that does not exist is an error, not a silent drop
$pub->set_return_listener(function () use (&$outcome) { $outcome = 'returned'; });

$failed = false;
$onEvent = function (AMQPMessage $msg) use ($pub, $outQueue, &$outcome, &$failed) {
    $event = json_decode($msg->getBody(), true);
    if (!is_array($event)) {
        logline('dropping a delivery that is not a JSON object');
        $msg->reject(false);
        return;
    }
    $item = answer($event);
    if ($item !== null) {
        $outcome = null;
        $pub->basic_publish(new AMQPMessage(
            json_encode($item, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR),
            [
                'content_type' => 'application/json',
                'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
                'message_id' => $item['id'],
            ]
        ), '', $outQueue, true);
        $deadline = microtime(true) + 30.0;
        for (;;) {
            try {
                $pub->wait_for_pending_acks_returns(max(0.1, $deadline - microtime(true)));
                break;
            } catch (AMQPTimeoutException $e) {
                // a signal (SIGTERM) ends the wait early too: wait on until the deadline
                if (microtime(true) >= $deadline) {
                    $outcome = 'no confirm within 30 s';
                    break;
                }
            }
        }
        if ($outcome !== 'ack') {
            // leave the event unacknowledged: the broker redelivers it
            logline("the broker refused an answer ($outcome); stopping");
            $failed = true;
            return;
        }
        logline('answered ' . ($event['type'] ?? '') . ' event ' . ($event['id'] ?? ''));
    }
    $msg->ack();
};
$tag = $sub->basic_consume($inQueue, '', false, false, false, false, $onEvent);
logline("consuming $inQueue, answering to $outQueue");

$stop = false;
pcntl_async_signals(true);
pcntl_signal(SIGTERM, function () use (&$stop) { $stop = true; });
pcntl_signal(SIGINT, function () use (&$stop) { $stop = true; });

while (!$stop && !$failed && $sub->is_consuming()) {
    try {
        $sub->wait(null, false, 1.0); // wakes up at least every second to look at $stop
    } catch (AMQPTimeoutException $e) {
        // nothing arrived
    }
}
// Unacknowledged events go back to the queue when the channel closes.
$sub->basic_cancel($tag);
$sub->close();
$pub->close();
$conn->close();
logline('stopped');
exit($failed ? 1 : 0);
