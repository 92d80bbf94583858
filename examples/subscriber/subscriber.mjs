// Prints syncer's events of one source as they happen (new ones only).
// NATS_URL=127.0.0.1:4222 SOURCE=cloud-images node subscriber.mjs
import { connect } from '@nats-io/transport-node';
import { jetstream, DeliverPolicy } from '@nats-io/jetstream';

const nc = await connect({ servers: process.env.NATS_URL ?? '127.0.0.1:4222' });
const subject = `syncer.changed.${process.env.SOURCE ?? 'cloud-images'}`;
// An ordered consumer from new messages on: not the stream's 7 days of history.
const consumer = await jetstream(nc).consumers.get('SYNCER', {
  filter_subjects: [subject],
  deliver_policy: DeliverPolicy.New,
});
const messages = await consumer.consume(); // a Promise in @nats-io/jetstream 3.x
console.log(`listening on ${subject}`);
for await (const m of messages) {
  const ev = m.json();
  for (const c of ev.data.changes) console.log(`${ev.data.sourceId} #${c.seq} ${c.op} ${c.key}`);
  // With CE.SDK: engine.asset.assetSourceContentsChanged(ev.data.sourceId);
}
