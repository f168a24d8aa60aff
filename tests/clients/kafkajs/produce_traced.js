#!/usr/bin/env node
// Produces ONE command to a Kafka topic with kafkajs, as an upstream producer written
// with kafkajs would: producer.send({topic, messages: [{key, value, headers}]}), the
// W3C trace context in the headers traceparent and tracestate. Exits 0 once the broker
// acknowledged the message (acks: all), 1 on any error, 2 on bad usage.
//
//   node produce_traced.js --bootstrap HOST:PORT[,...] --topic TOPIC --key KEY
//        [--traceparent TP] [--tracestate TS] [--timeout-ms MS] [COMMAND_JSON]
//
// The command is COMMAND_JSON, or stdin when it is not given; it is sent as it is
// (its bytes), after a check that it is JSON. Brokers are loopback only (127.0.0.1,
// localhost, ::1): this is a test client. Every wait is bounded by --timeout-ms
// (default 20000): connection, request, retries, and the whole run.
'use strict';

const fs = require('fs');
const { Kafka, logLevel, CompressionTypes, Partitioners } = require('kafkajs');

function usage(msg) {
  process.stderr.write('produce_traced.js: ' + msg + '\n' +
    'usage: produce_traced.js --bootstrap HOST:PORT[,...] --topic TOPIC --key KEY ' +
    '[--traceparent TP] [--tracestate TS] [--timeout-ms MS] [COMMAND_JSON]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { timeoutMs: 20000 };
  const names = {
    '--bootstrap': 'bootstrap', '--topic': 'topic', '--key': 'key',
    '--traceparent': 'traceparent', '--tracestate': 'tracestate', '--timeout-ms': 'timeoutMs',
  };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (Object.prototype.hasOwnProperty.call(names, a)) {
      if (i + 1 >= argv.length) usage(a + ' needs a value');
      opts[names[a]] = argv[++i];
    } else if (a.startsWith('--')) {
      usage('unknown option ' + a);
    } else {
      rest.push(a);
    }
  }
  if (!opts.bootstrap || !opts.topic || opts.key === undefined) usage('--bootstrap, --topic and --key are required');
  if (rest.length > 1) usage('one command at most');
  opts.timeoutMs = Number(opts.timeoutMs);
  if (!Number.isInteger(opts.timeoutMs) || opts.timeoutMs < 100 || opts.timeoutMs > 300000) {
    usage('--timeout-ms must be an integer from 100 to 300000');
  }
  opts.command = rest.length ? rest[0] : fs.readFileSync(0, 'utf8');
  return opts;
}

function loopbackBrokers(list) {
  const brokers = list.split(',').map((s) => s.trim()).filter((s) => s.length);
  if (!brokers.length) usage('--bootstrap is empty');
  for (const b of brokers) {
    const host = b.startsWith('[') ? b.slice(1, b.indexOf(']')) : b.slice(0, b.lastIndexOf(':'));
    if (!['127.0.0.1', 'localhost', '::1'].includes(host)) usage('not a loopback broker: ' + b);
  }
  return brokers;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const brokers = loopbackBrokers(opts.bootstrap);
  try {
    JSON.parse(opts.command);
  } catch (e) {
    usage('the command is not JSON: ' + e.message);
  }
  const headers = {};
  if (opts.traceparent !== undefined) headers.traceparent = opts.traceparent;
  if (opts.tracestate !== undefined) headers.tracestate = opts.tracestate;

  // the whole run, whatever kafkajs does
  const guard = setTimeout(() => {
    process.stderr.write('produce_traced.js: no acknowledgement within ' + opts.timeoutMs + ' ms\n');
    process.exit(1);
  }, opts.timeoutMs);

  const kafka = new Kafka({
    clientId: 'b2bd-test-kafkajs',
    brokers,
    connectionTimeout: Math.min(5000, opts.timeoutMs),
    requestTimeout: opts.timeoutMs,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
  });
  // kafkajs 2's default partitioner (murmur2 of the key, as the Java client), named so
  // that kafkajs does not warn about its change from 1.x
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  try {
    const meta = await producer.send({
      topic: opts.topic,
      acks: -1,
      timeout: opts.timeoutMs,
      compression: CompressionTypes.None,
      messages: [{ key: opts.key, value: opts.command, headers }],
    });
    // [{topicName, partition, errorCode, baseOffset, ...}]: what the test prints on failure
    process.stdout.write(JSON.stringify(meta) + '\n');
  } finally {
    await producer.disconnect();
  }
  clearTimeout(guard);
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write('produce_traced.js: ' + (e && e.stack ? e.stack : String(e)) + '\n');
  process.exit(1);
});
