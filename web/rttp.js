// rttp.js: the RTTP farm method in the browser, as an ES module with no
// build step. Served by every rttp-server with a web listener at /rttp.js.
//
// Layers, as in the Rust client library: the frames (parse, encode), the
// selection of a server from the table (the rules of rttp-proto's
// `select`), the connect sequence and the live session as pure state
// machines (tested with `node --test`, no sockets), and `RttpClient`, the
// thin driver over the browser's WebSocket. One RTTP frame travels per
// WebSocket text message (docs/PROTOCOL.md 1.5).

/** @typedef {{id: string, addr: string, status: string, users: number, capacity: number, group: string, transport: string, ws: string|null}} ServerEntry */
/** @typedef {{epoch: number, servers: ServerEntry[]}} FarmInfo */

const CRLF = "\r\n";

/**
 * Parses one server frame (a whole WebSocket message).
 * @param {string} text
 * @returns {{verb: string, [k: string]: any}}
 */
export function parseFrame(text) {
  const nl = text.indexOf("\n");
  if (nl < 0) throw new Error("a frame ends with a line end");
  const head = text.slice(0, nl).replace(/\r$/, "");
  const words = head.split(" ");
  const verb = words[0];
  const rest = text.slice(nl + 1);
  switch (verb) {
    case "MSG": {
      const [, room, id, nick, n] = words;
      return { verb, room, id, nick, text: bodyOf(rest, Number(n)) };
    }
    case "FARM_INFO": {
      const count = Number(words[2]);
      const lines = rest.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l.startsWith("SERVER "));
      if (lines.length < count) throw new Error("FARM_INFO shorter than its count");
      return { verb, info: { epoch: Number(words[1]), servers: lines.slice(0, count).map(parseServer) } };
    }
    case "WELCOME":
      return { verb, server: words[1], session: words[2] };
    case "ACK":
      return { verb, tag: words[1], id: words[2] };
    case "JOINED":
      // `at`: to the joiner, where the room stood (its last msg-id, or "-").
      return { verb, room: words[1], nick: words[2], at: words[3] ?? null };
    case "PARTED":
      return { verb, room: words[1], nick: words[2] };
    case "MEMBERS":
      return { verb, room: words[1], nicks: words.slice(2) };
    case "END_MEMBERS":
      return { verb, room: words[1], total: Number(words[2]) };
    case "REDIRECT":
      return { verb, server: words[1], addr: words[2], reason: words[3] };
    case "PING":
    case "PONG":
      return { verb, token: words[1] };
    case "ERR":
      return { verb, code: Number(words[1]), reason: head.slice(8) };
    default:
      return { verb, words };
  }
}

/** @param {string} rest @param {number} n */
function bodyOf(rest, n) {
  // The body is n bytes of UTF-8; in a whole message it runs to the last line end.
  const body = rest.replace(/\r?\n$/, "");
  if (new TextEncoder().encode(body).length !== n) throw new Error("body length mismatch");
  return body;
}

/** @param {string} line @returns {ServerEntry} */
function parseServer(line) {
  const w = line.split(" ");
  return {
    id: w[1],
    addr: w[2],
    status: w[3],
    users: Number(w[4]),
    capacity: Number(w[5]),
    group: w[6],
    transport: w[7] || "tcp",
    ws: w[8] && w[8] !== "-" ? w[8] : null,
  };
}

/** Encoders of the client frames this library sends. */
export const frames = {
  /** @param {string} nick @param {string|null} resume */
  hello: (nick, resume = null) => `HELLO 1 ${nick}${resume ? ` - ${resume}` : ""}${CRLF}`,
  /** @param {string} room @param {string|null} after */
  join: (room, after = null) => `JOIN ${room}${after ? ` ${after}` : ""}${CRLF}`,
  /** @param {string} room */
  part: (room) => `PART ${room}${CRLF}`,
  /** @param {string} room @param {string} tag @param {string} text */
  say: (room, tag, text) => `SAY ${room} ${tag} ${new TextEncoder().encode(text).length}${CRLF}${text}${CRLF}`,
  /** @param {string} room */
  who: (room) => `WHO ${room}${CRLF}`,
  /** @param {string} token */
  pong: (token) => `PONG ${token}${CRLF}`,
  /** @param {string} token */
  ping: (token) => `PING ${token}${CRLF}`,
  quit: () => `QUIT${CRLF}`,
};

/** users ÷ capacity; no capacity is infinitely loaded. @param {ServerEntry} e */
export function load(e) {
  return e.capacity === 0 ? Infinity : e.users / e.capacity;
}

/** One server drawn with probability proportional to its capacity. */
function weighted(pool, rng) {
  const total = pool.reduce((s, e) => s + e.capacity, 0);
  if (total === 0) return pool[Math.floor(rng() * pool.length)];
  let x = Math.floor(rng() * total);
  for (const e of pool) {
    if (x < e.capacity) return e;
    x -= e.capacity;
  }
  return pool[pool.length - 1];
}

/**
 * Chooses a server as rttp-proto's `select` does: UP servers with room, not
 * excluded, and here with a WebSocket URL; `group` prefers its group.
 * @param {ServerEntry[]} table
 * @param {{group?: string|null, strategy?: string, exclude?: string[], rng?: () => number}} o
 * @returns {ServerEntry|null}
 */
export function select(table, { group = null, strategy = "p2c", exclude = [], rng = Math.random } = {}) {
  const up = table.filter((e) => e.status === "UP" && e.capacity > e.users && !exclude.includes(e.id) && e.ws);
  if (up.length === 0) return null;
  const inGroup = group ? up.filter((e) => e.group === group) : [];
  const pool = inGroup.length ? inGroup : up;
  switch (strategy) {
    case "random":
      return up[Math.floor(rng() * up.length)];
    case "group":
      return pool[Math.floor(rng() * pool.length)];
    case "least-users": {
      const min = Math.min(...up.map(load));
      const best = up.filter((e) => load(e) <= min);
      return best[Math.floor(rng() * best.length)];
    }
    default: {
      const a = weighted(pool, rng);
      const rest = pool.filter((e) => e.id !== a.id);
      const b = rest.length ? weighted(rest, rng) : a;
      return load(b) < load(a) ? b : a;
    }
  }
}

/**
 * The connect sequence (docs/FARM-METHOD.md), pure: outcomes in, commands out.
 * Commands: {do: "connect", url, first}, {do: "ready", server, url},
 * {do: "wait", ms}, {do: "giveUp", reason}.
 */
export class Sequence {
  /** @param {{serviceUrl: string, group?: string|null, strategy?: string, maxRounds?: number, rng?: () => number}} o */
  constructor({ serviceUrl, group = null, strategy = "p2c", maxRounds = 5, rng = Math.random }) {
    Object.assign(this, { serviceUrl, group, strategy, maxRounds, rng });
    this.round = 0;
    this.exclude = [];
    /** @type {FarmInfo|null} */
    this.table = null;
    this.state = { at: "idle" };
    /** The round whose fallback queue `knownQueue` is (see `known`). */
    this.knownRound = -1;
    this.knownQueue = [];
  }

  /** Starts from the service URL (the browser's resolver picks the first server). */
  start() {
    this.round += 1;
    this.state = { at: "first" };
    return { do: "connect", url: this.serviceUrl, first: true };
  }

  /** Starts from the last table without `lost` (after losing a server). */
  startFromTable(lost) {
    this.round = 1;
    this.knownRound = -1;
    this.exclude = [lost];
    return this.table ? this.choose(null) : this.start();
  }

  /** Starts by going to a REDIRECT's target (its WebSocket URL from the table). */
  startRedirect(server, from) {
    this.round = 1;
    this.knownRound = -1;
    this.exclude = [from];
    const row = this.table?.servers.find((e) => e.id === server);
    if (!row?.ws) return this.choose(null);
    this.state = { at: "chosen", server, url: row.ws, attempt: 2 };
    return { do: "connect", url: row.ws, first: false };
  }

  /**
   * The first server answered: WELCOME and its table.
   * @param {string} server @param {FarmInfo} table
   */
  firstOpened(server, table) {
    this.table = table;
    return this.choose(server);
  }

  /** The chosen server answered. */
  chosenOpened() {
    const { server, url } = this.state;
    this.state = { at: "done" };
    return { do: "ready", server, url };
  }

  /** A connection (first or chosen) failed. @param {string} why */
  failed(why) {
    this.lastError = why;
    if (this.state.at === "chosen" && this.state.attempt === 1) {
      this.state = { ...this.state, attempt: 2 };
      return { do: "wait", ms: 250 + this.rng() * 250, then: { do: "connect", url: this.state.url, first: false } };
    }
    if (this.state.at === "chosen") {
      this.exclude.push(this.state.server);
      // Selecting again (with no candidate, it moves to the next round itself).
      if (this.table) return this.choose(null);
    }
    if (this.state.at === "first") {
      const c = this.known();
      if (c) return c;
    }
    return this.nextRound();
  }

  /**
   * The service URL did not answer: once a round, the web addresses of the
   * last table's servers stand in as first servers, in random order, those
   * this sequence excluded last (as the Rust library does). A farm whose
   * page host is down is still reached through the servers it told us of.
   */
  known() {
    if (this.knownRound !== this.round) {
      this.knownRound = this.round;
      const rows = (this.table?.servers ?? []).filter((e) => e.ws && e.ws !== this.serviceUrl);
      const keyed = rows.map((e) => [this.exclude.includes(e.id) ? 1 : 0, this.rng(), e.ws]);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      this.knownQueue = keyed.map((k) => k[2]);
    }
    const url = this.knownQueue.shift();
    return url ? { do: "connect", url, first: true } : null;
  }

  /** @param {string|null} on the server the client is on, if any */
  choose(on) {
    const pick = select(this.table?.servers ?? [], {
      group: this.group,
      strategy: this.strategy,
      exclude: this.exclude,
      rng: this.rng,
    });
    if (!pick) {
      this.lastError = "no server of the farm with a web address is UP";
      return this.nextRound();
    }
    if (pick.id === on) {
      this.state = { at: "done" };
      return { do: "ready", server: on, url: pick.ws, stay: true };
    }
    this.state = { at: "chosen", server: pick.id, url: pick.ws, attempt: 1 };
    return { do: "connect", url: pick.ws, first: false, server: pick.id };
  }

  nextRound() {
    if (this.round >= this.maxRounds) {
      this.state = { at: "done" };
      return { do: "giveUp", reason: this.lastError ?? "no server" };
    }
    // Exponential backoff with full jitter.
    const cap = Math.min(5000, 200 * 2 ** this.round);
    this.round += 1;
    this.state = { at: "first" };
    return { do: "wait", ms: this.rng() * cap, then: { do: "connect", url: this.serviceUrl, first: true } };
  }
}

/**
 * Whether a refused HELLO ends the connect sequence (as the Rust library's
 * `Error::ends_sequence`): a refused token always; a nick in use only for a
 * client that is not resuming, since while it resumes the holder may be a
 * HELLO of its own that it gave up on and a slow server opened anyway.
 * @param {number|undefined} code @param {boolean} resuming
 */
export function endsSequence(code, resuming) {
  return code === 511 || (code === 433 && !resuming);
}

/** Ids remembered per room, to show each message once across moves. */
export const DEDUP_PER_ROOM = 4096;
/** How long a line may wait for its ACK before it is given up. */
export const GIVE_UP_AFTER_MS = 30000;
/**
 * Lines sent per second, and at once, at most: under a server's default SAY
 * limit (20 a second, bursts of 40), so that the backlog resent after a move
 * is not dropped by it (`ERR 429` names no line). As in the Rust library.
 */
export const SEND_RATE = 16;
export const SEND_BURST = 32;

/** The live session, pure: rooms, last ids, duplicates, lines not acknowledged. */
export class Session {
  /** @param {string} nick */
  constructor(nick) {
    this.nick = nick;
    /** @type {string[]} */
    this.rooms = [];
    /** @type {Map<string, string>} */
    this.lastId = new Map();
    /** @type {Map<string, Set<string>>} */
    this.seen = new Map();
    /** @type {{tag: string, room: string, text: string, since: number, sent: boolean}[]} */
    this.outbox = [];
    this.tokens = SEND_BURST;
    /** @type {number | null} */
    this.counted = null;
    this.prefix = Math.floor(Math.random() * 2 ** 32).toString(16).padStart(8, "0");
    this.next = 1;
  }

  /** @param {string} room */
  join(room) {
    if (!this.rooms.includes(room)) this.rooms.push(room);
    return frames.join(room);
  }

  /** After a move: every room again from its last id; what is not acknowledged goes again through `due`. */
  resume() {
    this.outbox.forEach((u) => { u.sent = false; });
    return this.rooms.map((r) => frames.join(r, this.lastId.get(r) ?? null));
  }

  /** Keeps a line (sent by `due`); returns its tag. @param {string} room @param {string} text @param {number} now */
  say(room, text, now) {
    const tag = `${this.prefix}-${this.next++}`;
    this.outbox.push({ tag, room, text, since: now, sent: false });
    return tag;
  }

  /** The SAY frames to send now: lines not sent on this connection, in order, at the pace. @param {number} now */
  due(now) {
    if (this.counted !== null) this.tokens = Math.min(SEND_BURST, this.tokens + ((now - this.counted) / 1000) * SEND_RATE);
    this.counted = now;
    const out = [];
    for (const u of this.outbox) {
      if (u.sent) continue;
      if (this.tokens < 1) break;
      this.tokens -= 1;
      u.sent = true;
      out.push(frames.say(u.room, u.tag, u.text));
    }
    return out;
  }

  /** Whether lines wait for the pace. */
  hasUnsent() {
    return this.outbox.some((u) => !u.sent);
  }

  /** Lines waiting longer than the bound, given up. @param {number} now */
  expire(now) {
    const gone = this.outbox.filter((u) => now - u.since > GIVE_UP_AFTER_MS);
    this.outbox = this.outbox.filter((u) => now - u.since <= GIVE_UP_AFTER_MS);
    return gone.map((u) => ({ type: "unacked", room: u.room, tag: u.tag, text: u.text }));
  }

  /**
   * What a server frame means: {events, reply, move}.
   * @param {ReturnType<typeof parseFrame>} f
   */
  onFrame(f) {
    const r = { events: [], reply: null, move: null };
    switch (f.verb) {
      case "MSG": {
        const seen = this.seen.get(f.room) ?? new Set();
        this.seen.set(f.room, seen);
        if (!seen.has(f.id)) {
          seen.add(f.id);
          if (seen.size > DEDUP_PER_ROOM) seen.delete(seen.values().next().value);
          this.lastId.set(f.room, f.id);
          r.events.push({ type: "message", room: f.room, id: f.id, nick: f.nick, text: f.text });
        }
        break;
      }
      case "ACK": {
        const i = this.outbox.findIndex((u) => u.tag === f.tag);
        if (i >= 0) {
          const [u] = this.outbox.splice(i, 1);
          r.events.push({ type: "acked", room: u.room, tag: f.tag, id: f.id });
        }
        break;
      }
      case "JOINED":
        // Our own JOINED names the room's position: a room left before any
        // message was seen is rejoined from there (a later JOINED does not
        // move it: what the rejoin asked for is still coming).
        if (f.nick === this.nick && f.at && this.rooms.includes(f.room) && !this.lastId.has(f.room)) {
          this.lastId.set(f.room, f.at);
        }
        r.events.push({ type: "joined", room: f.room, nick: f.nick });
        break;
      case "PARTED":
        r.events.push({ type: "parted", room: f.room, nick: f.nick });
        break;
      case "FARM_INFO":
        r.events.push({ type: "table", info: f.info });
        break;
      case "PING":
        r.reply = frames.pong(f.token);
        break;
      case "REDIRECT":
        r.move = { why: "redirect", server: f.server, reason: f.reason };
        break;
      case "ERR":
        r.events.push({ type: "error", code: f.code, reason: f.reason });
        if (f.code === 512) r.move = { why: "end", reason: f.reason };
        else if (f.code >= 500) r.move = { why: "lost", reason: `ERR ${f.code} ${f.reason}` };
        break;
      default:
        break;
    }
    return r;
  }
}

/** Timers of the driver, in ms. */
export const TIMERS = { hello: 3000, pingEvery: 2000, silence: 6000 };

/**
 * The ping ticker's verdict at `now`, given when a frame was last `heard`
 * and when the ticker last ran: `{ lost, heard }`. A tick far later than
 * its period means the page was asleep (a background tab, a closed lid),
 * not that the server went quiet: frames that arrived meanwhile may still
 * wait behind this tick, and a page cannot look into its socket. Silence
 * then counts from the wake-up; a server that really is gone is still
 * found `silence` later (or at once, when its socket closes).
 */
export function silenceVerdict(now, heard, lastTick, timers = TIMERS) {
  if (now - lastTick > 2 * timers.pingEvery) return { lost: false, heard: now };
  return { lost: now - heard > timers.silence, heard };
}

/**
 * The farm-aware client over the browser's WebSocket: connect to the
 * service, select the serving server from the table, move on REDIRECT or
 * loss, resume every room and resend what is not acknowledged. Events go
 * to `onEvent` ({type: "connected"|"moving"|"message"|"acked"|"unacked"|
 * "joined"|"parted"|"table"|"error"|"closed", ...}).
 */
export class RttpClient {
  /** @param {{url: string, nick: string, group?: string|null, strategy?: string, onEvent?: (e: object) => void}} o */
  constructor({ url, nick, group = null, strategy = "p2c", onEvent = () => {} }) {
    this.seq = new Sequence({ serviceUrl: url, group, strategy });
    this.session = new Session(nick);
    this.onEvent = onEvent;
    this.ws = null;
    this.server = null;
    this.resumeToken = null;
    this.closed = false;
  }

  /** Opens a WebSocket and says HELLO: {ws, server, table} or {redirect}. */
  open(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => { ws.close(); reject(new Error(`no answer from ${url}`)); }, TIMERS.hello);
      let server = null;
      ws.onopen = () => ws.send(frames.hello(this.session.nick, this.resumeToken));
      ws.onerror = () => { clearTimeout(timer); reject(new Error(`cannot reach ${url}`)); };
      ws.onmessage = (m) => {
        const f = parseFrame(m.data);
        // The newest session holds the nick: its id proves it on the next HELLO.
        if (f.verb === "WELCOME") { server = f.server; this.resumeToken = f.session; }
        else if (f.verb === "FARM_INFO" && server) { clearTimeout(timer); ws.onmessage = null; ws.onerror = null; resolve({ ws, server, table: f.info }); }
        else if (f.verb === "REDIRECT") { clearTimeout(timer); resolve({ redirect: f }); }
        else if (f.verb === "ERR") { clearTimeout(timer); ws.close(); reject(Object.assign(new Error(`ERR ${f.code} ${f.reason}`), { code: f.code })); }
      };
    });
  }

  /** Runs the connect sequence from `cmd` until a session is ready. */
  async run(cmd) {
    let live = null;
    for (;;) {
      if (cmd.do === "giveUp") throw new Error(`gave up: ${cmd.reason}`);
      if (cmd.do === "wait") { await new Promise((r) => setTimeout(r, cmd.ms)); cmd = cmd.then; continue; }
      if (cmd.do === "ready") break;
      try {
        const o = await this.open(cmd.url);
        if (o.redirect) { live?.ws.close(); cmd = this.seq.startRedirect(o.redirect.server, o.redirect.server); continue; }
        if (cmd.first) {
          live = o;
          cmd = this.seq.firstOpened(o.server, o.table);
          if (cmd.do === "connect") { /* keep the first open until the chosen answers */ }
        } else {
          live?.ws.close();
          live = o;
          this.seq.table = o.table;
          cmd = this.seq.chosenOpened();
        }
      } catch (e) {
        if (endsSequence(e.code, this.resumeToken !== null)) throw e;
        cmd = this.seq.failed(e.message);
      }
    }
    this.attach(live);
  }

  /** Serves the live connection. */
  attach(live) {
    this.ws = live.ws;
    this.server = live.server;
    this.heard = Date.now();
    this.onEvent({ type: "table", info: live.table });
    this.onEvent({ type: "connected", server: live.server });
    for (const f of this.session.resume()) this.ws.send(f);
    this.sendDue();
    const ws = this.ws;
    ws.onmessage = (m) => {
      this.heard = Date.now();
      const r = this.session.onFrame(parseFrame(m.data));
      r.events.forEach((e) => this.onEvent(e));
      if (r.reply) ws.send(r.reply);
      if (r.move) this.move(r.move);
    };
    ws.onclose = () => { if (ws === this.ws) this.move({ why: "lost", reason: "connection closed" }); };
    clearInterval(this.ticker);
    clearInterval(this.pacer);
    this.pacer = setInterval(() => { if (this.session.hasUnsent()) this.sendDue(); }, 1000 / SEND_RATE);
    let lastTick = Date.now();
    this.ticker = setInterval(() => {
      const now = Date.now();
      this.session.expire(now).forEach((e) => this.onEvent(e));
      const v = silenceVerdict(now, this.heard, lastTick);
      lastTick = now;
      this.heard = v.heard;
      if (v.lost) this.move({ why: "lost", reason: "silent" });
      else if (ws.readyState === 1) ws.send(frames.ping("c"));
    }, TIMERS.pingEvery);
  }

  /** Leaves the server for `m.why` and comes back elsewhere. */
  async move(m) {
    const from = this.server;
    const old = this.ws;
    this.ws = null;
    old?.close();
    clearInterval(this.ticker);
    clearInterval(this.pacer);
    if (this.closed) return;
    if (m.why === "end") { this.onEvent({ type: "closed", reason: m.reason }); return; }
    this.onEvent({ type: "moving", from, why: m.why, reason: m.reason ?? "" });
    const cmd = m.why === "redirect" ? this.seq.startRedirect(m.server, from) : this.seq.startFromTable(from);
    try { await this.run(cmd); } catch (e) { this.onEvent({ type: "closed", reason: e.message }); }
  }

  /** Runs the connect sequence from the service URL. */
  connect() { return this.run(this.seq.start()); }

  /** @param {string} room */
  join(room) { const f = this.session.join(room); this.ws?.send(f); }

  /** @param {string} room */
  part(room) { this.session.rooms = this.session.rooms.filter((r) => r !== room); this.ws?.send(frames.part(room)); }

  /** Says a line; returns its tag ("acked" or "unacked" follows). @param {string} room @param {string} text */
  say(room, text) { const tag = this.session.say(room, text, Date.now()); this.sendDue(); return tag; }

  /** Sends what the pace allows now (nothing while moving: it goes after the move). */
  sendDue() { if (this.ws?.readyState === 1) for (const f of this.session.due(Date.now())) this.ws.send(f); }

  /** @param {string} room */
  who(room) { this.ws?.send(frames.who(room)); }

  quit() { this.closed = true; clearInterval(this.ticker); this.ws?.send(frames.quit()); this.ws?.close(); }
}
