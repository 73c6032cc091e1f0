// Unit tests of rttp.js with Node's test runner (`node --test web/test/`):
// the frames, the selection (the rules of rttp-proto's select), the connect
// sequence and the session, all without sockets.

import { test } from "node:test";
import assert from "node:assert/strict";

import { parseFrame, frames, select, load, Sequence, Session, GIVE_UP_AFTER_MS, SEND_RATE, SEND_BURST, silenceVerdict, TIMERS, endsSequence } from "../rttp.js";

/** A seeded generator (mulberry32), so draws are repeatable. */
function rng(seed = 1) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const row = (id, { status = "UP", users = 0, capacity = 100, group = "g", ws = true } = {}) => ({
  id,
  addr: `127.0.0.${id.slice(1)}:7000`,
  status,
  users,
  capacity,
  group,
  transport: "tcp",
  ws: ws ? `ws://127.0.0.${id.slice(1)}:8080/rttp` : null,
});

test("frames parse as the server writes them", () => {
  assert.deepEqual(parseFrame("MSG #r s1:a:1 bob 5\r\nhéllo\r\n".replace("5", "6")), {
    verb: "MSG", room: "#r", id: "s1:a:1", nick: "bob", text: "héllo",
  });
  const t = parseFrame("FARM_INFO 3 2\r\nSERVER s1 127.0.0.1:7000 UP 1 10 g1 tcp ws://127.0.0.1:8080/rttp\r\nSERVER s2 127.0.0.2:7000 FULL 9 10 g2\r\n");
  assert.equal(t.info.epoch, 3);
  assert.equal(t.info.servers[0].ws, "ws://127.0.0.1:8080/rttp");
  assert.equal(t.info.servers[1].ws, null, "an older row without the field has no web address");
  assert.equal(t.info.servers[1].transport, "tcp");
  assert.deepEqual(parseFrame("ACK k-1 s2:b:9\r\n"), { verb: "ACK", tag: "k-1", id: "s2:b:9" });
  assert.deepEqual(parseFrame("ERR 433 nick alice is in use\r\n"), { verb: "ERR", code: 433, reason: "nick alice is in use" });
  assert.throws(() => parseFrame("FARM_INFO 1 2\r\nSERVER s1 a:1 UP 0 1 g\r\n"), /shorter/);
  assert.throws(() => parseFrame("MSG #r i n 9\r\nshort\r\n"), /length/);
  assert.equal(frames.say("#r", "t-1", "héllo"), "SAY #r t-1 6\r\nhéllo\r\n", "the length counts UTF-8 bytes");
  assert.equal(frames.hello("alice", "s1-1-x"), "HELLO 1 alice - s1-1-x\r\n");
  assert.equal(frames.join("#r", "s1:a:3"), "JOIN #r s1:a:3\r\n");
});

test("only UP servers with room and a web address are chosen", () => {
  const table = [
    row("s1", { status: "FULL" }),
    row("s2", { status: "DRAINING" }),
    row("s3", { users: 100 }),
    row("s4", { ws: false }),
    row("s5"),
    row("s6"),
  ];
  for (const strategy of ["p2c", "random", "least-users", "group"]) {
    const seen = new Set();
    for (let i = 0; i < 200; i++) seen.add(select(table, { strategy, rng: rng(i + 1) }).id);
    assert.deepEqual([...seen].sort(), ["s5", "s6"], strategy);
  }
  assert.equal(select(table, { exclude: ["s5", "s6"] }), null);
  assert.equal(select([], {}), null);
});

test("group prefers its group; least-users and p2c weigh users by capacity", () => {
  const table = [row("s1", { group: "a" }), row("s2", { group: "b" }), row("s3", { group: "b" })];
  for (let i = 0; i < 50; i++) assert.equal(select(table, { strategy: "group", group: "a", rng: rng(i + 3) }).id, "s1");
  const uneven = [row("s1", { users: 50, capacity: 100 }), row("s2", { users: 60, capacity: 1000 })];
  assert.equal(select(uneven, { strategy: "least-users" }).id, "s2", "6 % beats 50 %");
  assert.ok(load(uneven[1]) < load(uneven[0]));
  // p2c over two servers always keeps the less loaded one.
  for (let i = 0; i < 50; i++) assert.equal(select(uneven, { strategy: "p2c", rng: rng(i + 7) }).id, "s2");
  // p2c draws by capacity: an empty farm of 1,000 and 3,000 gets about 1:3.
  const caps = [row("s1", { capacity: 1000 }), row("s2", { capacity: 3000 })];
  const r = rng(42);
  let s2 = 0;
  for (let i = 0; i < 4000; i++) if (select(caps, { strategy: "random", rng: r }).id === "s2") s2++;
  assert.ok(s2 > 1700 && s2 < 2300, `random ignores capacity: ${s2}`);
});

const info = (...rows) => ({ epoch: 1, servers: rows });

test("the sequence: first server, chosen server, retry once, then select again", () => {
  const s = new Sequence({ serviceUrl: "ws://chat.example/rttp", strategy: "random", rng: rng(5) });
  assert.deepEqual(s.start(), { do: "connect", url: "ws://chat.example/rttp", first: true });
  // The first server is s1, and the table offers only s2: go there.
  const go = s.firstOpened("s1", info(row("s1", { status: "FULL" }), row("s2"), row("s3", { status: "DOWN" })));
  assert.deepEqual(go, { do: "connect", url: "ws://127.0.0.2:8080/rttp", first: false, server: "s2" });
  // It fails once: wait, then the same server again.
  const retry = s.failed("refused");
  assert.equal(retry.do, "wait");
  assert.equal(retry.then.url, "ws://127.0.0.2:8080/rttp");
  // Twice: excluded; nothing else UP with room: the next round from the service.
  const again = s.failed("refused");
  assert.equal(again.do, "wait");
  assert.equal(again.then.first, true);
  assert.deepEqual(s.exclude, ["s2"]);
});

test("the sequence stays on the first server when it is the choice, and gives up after its rounds", () => {
  const s = new Sequence({ serviceUrl: "ws://x/rttp", maxRounds: 2, rng: rng(2) });
  s.start();
  assert.deepEqual(s.firstOpened("s1", info(row("s1"))), { do: "ready", server: "s1", url: "ws://127.0.0.1:8080/rttp", stay: true });
  const t = new Sequence({ serviceUrl: "ws://x/rttp", maxRounds: 2, rng: rng(2) });
  t.start();
  assert.equal(t.failed("no answer").do, "wait");
  assert.equal(t.failed("no answer").do, "giveUp");
});

test("a service URL that does not answer falls back to the last table's servers, once a round", () => {
  const s = new Sequence({ serviceUrl: "ws://x/rttp", strategy: "group", group: "g", maxRounds: 3, rng: rng(4) });
  s.start();
  s.firstOpened("s1", info(row("s1"), row("s2"), row("s3"), row("s4", { status: "DRAINING" })));
  s.chosenOpened();
  // s1 is lost; s2 (the choice) fails twice: excluded, s3 is chosen; it fails too.
  let c = s.startFromTable("s1");
  const other = c.server === "s2" ? "s3" : "s2";
  s.failed("refused");
  c = s.failed("refused");
  assert.equal(c.server, other);
  s.failed("refused");
  c = s.failed("refused");
  assert.equal(c.do, "wait", "nothing left to choose: the next round, from the service URL");
  assert.equal(c.then.url, "ws://x/rttp");
  // The service URL does not answer: every known server once, then the next round.
  const tried = [];
  for (c = s.failed("no answer"); c.do === "connect"; c = s.failed("no answer")) {
    assert.equal(c.first, true);
    tried.push(c.url);
  }
  const urls = [1, 2, 3, 4].map((i) => `ws://127.0.0.${i}:8080/rttp`);
  assert.deepEqual([...tried].sort(), urls);
  assert.equal(tried[0], urls[3], "s4 (never chosen, so not excluded) comes before those that failed");
  assert.equal(c.do, "wait");
  // The next round does the same, and the rounds stay bounded.
  let knowns = 0;
  for (c = s.failed("no answer"); c.do !== "giveUp"; c = s.failed("no answer")) if (c.do === "connect") knowns++;
  assert.equal(knowns, 4);
  // A client that never had a table has no fallback.
  const t = new Sequence({ serviceUrl: "ws://x/rttp", maxRounds: 2, rng: rng(2) });
  t.start();
  assert.equal(t.failed("no answer").do, "wait");
});

test("a REDIRECT goes to its target's web address; a lost server is left out", () => {
  const s = new Sequence({ serviceUrl: "ws://x/rttp", strategy: "random", rng: rng(9) });
  s.start();
  s.firstOpened("s1", info(row("s1"), row("s2"), row("s3")));
  s.chosenOpened();
  assert.deepEqual(s.startRedirect("s3", "s1"), { do: "connect", url: "ws://127.0.0.3:8080/rttp", first: false });
  for (let i = 0; i < 20; i++) {
    const c = s.startFromTable("s2");
    assert.notEqual(c.server, "s2");
  }
});

test("the session shows each message once, resumes rooms and resends what is not acknowledged", () => {
  const s = new Session("alice");
  assert.equal(s.join("#r"), "JOIN #r\r\n");
  const msg = { verb: "MSG", room: "#r", id: "s1:a:5", nick: "bob", text: "hi" };
  assert.equal(s.onFrame(msg).events.length, 1);
  assert.equal(s.onFrame(msg).events.length, 0, "a replayed duplicate is dropped");
  const tag = s.say("#r", "yo", 0);
  assert.deepEqual(s.due(0), [`SAY #r ${tag} 2\r\nyo\r\n`]);
  s.say("#r", "second", 0);
  assert.equal(s.due(0).length, 1, "only the new line");
  const resume = s.resume();
  assert.deepEqual(resume, ["JOIN #r s1:a:5\r\n"], "back in the room after the last id seen");
  assert.equal(s.due(0).length, 2, "both lines go again");
  assert.deepEqual(s.onFrame({ verb: "ACK", tag, id: "s2:b:1" }).events, [{ type: "acked", room: "#r", tag, id: "s2:b:1" }]);
  s.resume();
  assert.equal(s.due(0).length, 1);
  const gone = s.expire(GIVE_UP_AFTER_MS + 1);
  assert.equal(gone.length, 1);
  assert.equal(gone[0].type, "unacked");
  assert.equal(s.onFrame({ verb: "PING", token: "idle" }).reply, "PONG idle\r\n");
  assert.deepEqual(s.onFrame({ verb: "REDIRECT", server: "s3", addr: "a:1", reason: "drain" }).move, { why: "redirect", server: "s3", reason: "drain" });
  assert.equal(s.onFrame({ verb: "ERR", code: 512, reason: "replaced" }).move.why, "end");
  assert.equal(s.onFrame({ verb: "ERR", code: 508, reason: "shutting down" }).move.why, "lost");
  assert.equal(s.onFrame({ verb: "ERR", code: 407, reason: "not in room" }).move, null);
});

test("a room where nothing was seen is rejoined from where it stood at the join", () => {
  const s = new Session("alice");
  s.join("#quiet");
  s.join("#empty");
  s.onFrame(parseFrame("JOINED #quiet alice s1:a:41\r\n"));
  s.onFrame(parseFrame("JOINED #empty alice -\r\n"));
  s.onFrame(parseFrame("JOINED #quiet bob\r\n"));
  assert.deepEqual(s.resume(), ["JOIN #quiet s1:a:41\r\n", "JOIN #empty -\r\n"]);
  s.onFrame(parseFrame("JOINED #quiet alice s2:b:9\r\n"));
  assert.deepEqual(s.resume()[0], "JOIN #quiet s1:a:41\r\n", "the rejoin's JOINED does not move it");
  s.onFrame({ verb: "MSG", room: "#quiet", id: "s1:a:42", nick: "bob", text: "hi" });
  assert.deepEqual(s.resume()[0], "JOIN #quiet s1:a:42\r\n");
});

test("a backlog goes out at the pace, in order (under the server's SAY limit)", () => {
  const s = new Session("alice");
  s.join("#r");
  for (let i = 0; i < 100; i++) s.say("#r", `l${String(i).padStart(3, "0")}`, 0);
  const first = s.due(0);
  assert.equal(first.length, SEND_BURST, "a burst at once");
  assert.ok(s.hasUnsent());
  const next = s.due(500);
  assert.equal(next.length, SEND_RATE / 2, "then the rate");
  assert.ok(next[0].endsWith(`l${String(SEND_BURST).padStart(3, "0")}\r\n`), "in the order said");
  let n = first.length + next.length;
  for (let t = 1000; s.hasUnsent(); t += 1000) n += s.due(t).length;
  assert.equal(n, 100, "every line once");
});

test("silence counts from a wake-up: a page that slept does not leave a talking server", () => {
  const { pingEvery, silence } = TIMERS;
  let t = 100000;
  // Ticking on time with nothing heard for longer than the bound: lost.
  assert.deepEqual(silenceVerdict(t, t - silence - 1, t - pingEvery), { lost: true, heard: t - silence - 1 });
  assert.equal(silenceVerdict(t, t - silence + 1, t - pingEvery).lost, false);
  // The page slept a minute: its frames may wait behind this tick.
  const heard = t - 60000;
  let v = silenceVerdict(t, heard, t - 60000);
  assert.deepEqual(v, { lost: false, heard: t }, "silence counts from the wake-up");
  // Nothing comes after the wake-up either: lost once the bound has passed
  // again, on time, and not before.
  let last = t;
  for (let k = 1; k * pingEvery <= silence; k++) {
    const now = t + k * pingEvery;
    v = silenceVerdict(now, v.heard, last);
    last = now;
    assert.equal(v.lost, false, `${k * pingEvery} ms after waking`);
  }
  v = silenceVerdict(last + pingEvery, v.heard, last);
  assert.equal(v.lost, true, "a server that is really gone is still found");
});

test("a nick in use ends the connect sequence only for a client that is not resuming", () => {
  assert.equal(endsSequence(433, false), true);
  assert.equal(endsSequence(433, true), false);
  assert.equal(endsSequence(511, true), true);
  assert.equal(endsSequence(503, false), false);
  assert.equal(endsSequence(undefined, false), false);
});
