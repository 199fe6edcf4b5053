"use strict";
// Werk compatibility scenarios for the npm `faktory-worker` client.
//
// Usage: FAKTORY_URL=tcp://[:password@]host:port node scenario.js <scenario>
// Each scenario drives a real Werk server through the client's public API and prints one
// line of JSON with what it observed (raw INFO documents, fetched jobs, errors); the Python
// test (tests/compat/test_node.py) makes the assertions.

const { Client, Worker } = require("faktory-worker");

const url = process.env.FAKTORY_URL;
if (!url) {
  console.error("FAKTORY_URL is not set");
  process.exit(2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// FETCH blocks for about 2 s when nothing is ready: poll with fresh FETCHes until a deadline.
async function fetchWithin(client, ms, ...queues) {
  const deadline = Date.now() + ms;
  let job = null;
  while (!job && Date.now() < deadline) {
    job = await client.fetch(...queues);
  }
  return job;
}

async function pushFetchAck() {
  const client = new Client({ url });
  const job = client.job("Add", 1, 2);
  job.jid = "node-jid-0001";
  job.custom = { trace: "abc" };
  const pushed = await job.push();
  const infoQueued = await client.info();
  const fetched = await client.fetch("default");
  const infoWorking = await client.info();
  const ack = await client.ack(fetched.jid);
  const infoDone = await client.info();
  await client.close();
  return { pushed, fetched, ack, infoQueued, infoWorking, infoDone };
}

async function pushBulk() {
  const client = new Client({ url });
  const rejected = await client.pushBulk([
    { jid: "node-bulk-001", jobtype: "Bulk", args: [1] },
    { jid: "node-bulk-002", jobtype: "Bulk", args: [2] },
    { jid: "short", jobtype: "Bulk", args: [3] },
  ]);
  const info = await client.info();
  await client.close();
  return { rejected, info };
}

async function fail() {
  const client = new Client({ url });
  await client.job("Flaky", "x").push();
  const fetched = await client.fetch("default");
  // node sends {message, errtype, backtrace, jid}; errtype is `${e.code}`, here "undefined"
  const failed = await client.fail(fetched.jid, new Error("boom"));
  const info = await client.info();
  let again = null;
  try {
    await client.fail(fetched.jid, new Error("again"));
  } catch (error) {
    again = String(error.message);
  }
  await client.close();
  return { failed, info, again };
}

async function schedule() {
  const client = new Client({ url });
  const job = client.job("Later");
  job.jid = "node-sched-01";
  job.at = new Date(Date.now() + 1000); // sent as toISOString(): ...T..:..:..sssZ
  const started = Date.now();
  await job.push();
  const infoScheduled = await client.info();
  const fetched = await fetchWithin(client, 6000, "default");
  const elapsedMs = Date.now() - started;
  const infoDue = await client.info();
  if (fetched) await client.ack(fetched.jid);
  await client.close();
  return { sentAt: job.at, fetched, elapsedMs, infoScheduled, infoDue };
}

async function mutate() {
  const client = new Client({ url });
  const steps = [];
  const step = async (label) => steps.push([label, await client.info()]);
  const far = new Date(Date.now() + 3600 * 1000);
  for (const [jid, type] of [
    ["node-s-a1", "MutA"],
    ["node-s-a2", "MutA"],
    ["node-s-b1", "MutB"],
  ]) {
    const job = client.job(type);
    job.jid = jid;
    job.at = far;
    await job.push();
  }
  for (const [jid, arg] of [
    ["node-r-1", "needle"],
    ["node-r-2", "hay"],
    ["node-r-3", "hay"],
  ]) {
    const job = client.job("Retry", arg);
    job.jid = jid;
    await job.push();
    const fetched = await client.fetch("default");
    await client.fail(fetched.jid, new Error("m"));
  }
  await step("setup");
  await client.scheduled.ofType("MutA").discard();
  await step("discard scheduled jobtype");
  await client.scheduled.withJids("node-s-b1").kill();
  await step("kill scheduled jid");
  await client.retries.matching("*needle*").discard();
  await step("discard retries regexp");
  await client.retries.withJids(["node-r-2"]).requeue();
  await step("requeue retries jid");
  const requeued = await client.fetch("default");
  await client.ack(requeued.jid);
  await client.retries.ofType("Retry").kill();
  await step("kill retries jobtype");
  await client.dead.withJids("node-s-b1").requeue();
  await step("requeue dead jid");
  await client.dead.clear(); // sends "filter":{}
  await step("clear dead");
  const extra = client.job("MutC");
  extra.at = far;
  await extra.push();
  await client.scheduled.clear();
  await client.retries.clear();
  await step("clear scheduled and retries");
  await client.close();
  return { steps, requeued };
}

async function pause() {
  const client = new Client({ url });
  for (const [jid, queue] of [
    ["node-high-1", "high"],
    ["node-low-01", "low"],
  ]) {
    const job = client.job(queue === "high" ? "Hi" : "Lo");
    job.jid = jid;
    job.queue = queue;
    await job.push();
  }
  // faktory-worker has no queue-control API: its raw Client.send() facility sends QUEUE.
  const paused = await client.send(["QUEUE", "PAUSE", "high"]);
  const skipped = await client.fetch("high", "low");
  await client.ack(skipped.jid);
  const whilePaused = await client.fetch("high"); // null after ~2 s
  const infoPaused = await client.info();
  const resumed = await client.send(["QUEUE", "RESUME", "high"]);
  const afterResume = await client.fetch("high");
  if (afterResume) await client.ack(afterResume.jid);
  await client.close();
  return { paused, skipped, whilePaused, infoPaused, resumed, afterResume };
}

async function connectError(clientUrl) {
  const client = new Client({ url: clientUrl });
  try {
    await client.connect();
    return null;
  } catch (error) {
    return String(error.message);
  } finally {
    await client.close();
  }
}

async function auth() {
  const good = new Client({ url });
  await good.connect();
  const pushed = await good.push({ jid: "node-auth-01", jobtype: "Secure", args: [] });
  const info = await good.info();
  await good.close();

  const wrong = new URL(url);
  wrong.password = "wrong-pw";
  const none = new URL(url);
  none.password = "";
  return {
    pushed,
    info,
    wrongPassword: await connectError(wrong.toString()),
    noPassword: await connectError(none.toString()),
  };
}

async function worker() {
  const jobs = 12;
  const results = [];
  const errors = [];
  const failed = [];
  const w = new Worker({ url, concurrency: 3, queues: ["default"], beatInterval: 1 });
  w.register("add", async (a, b) => {
    results.push(a + b);
  });
  w.register("explode", async (reason) => {
    throw new Error(reason);
  });
  w.on("error", (error) => errors.push(String(error && error.stack)));
  w.on("fail", ({ job }) => failed.push(job.jid));

  const client = new Client({ url });
  for (let i = 0; i < jobs; i += 1) await client.job("add", i, i).push();
  const boom = client.job("explode", "kaboom");
  boom.jid = "node-boom-01";
  await boom.push();

  await w.work(); // BEATs first, then starts fetching
  const deadline = Date.now() + 20000;
  let info = await client.info();
  while (
    Date.now() < deadline &&
    !(info.faktory.total_processed === jobs + 1 && info.faktory.sets.working === 0)
  ) {
    await sleep(50);
    info = await client.info();
  }
  await sleep(1100); // let at least one interval BEAT happen while the worker is live
  // FLUSH clears jobs, not connected workers: the worker's next BEAT must still succeed.
  await client.flush();
  let beatAfterFlush = "ok";
  try {
    await w.beat();
  } catch (error) {
    beatAfterFlush = String(error.message);
  }
  await w.stop();
  await client.close();
  return { jobs, results, failed, errors, info, beatAfterFlush };
}

const scenarios = {
  push_fetch_ack: pushFetchAck,
  push_bulk: pushBulk,
  fail,
  schedule,
  mutate,
  pause,
  auth,
  worker,
};

async function main() {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) {
    console.error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(", ")}`);
    process.exit(2);
  }
  const result = await scenario();
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});
