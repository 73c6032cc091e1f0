// A scripted rttp.js client for the end-to-end suite (the library as a
// page uses it, over a real WebSocket to real servers):
//   node farm-client.mjs <service-ws-url> <nick> <room> <lines> <expect>
// Joins <room>, says <lines> lines "<nick>-<n>" one every 100 ms, and
// exits once it has seen <expect> messages and all its lines are
// acknowledged (or after 40 s). Prints one event per line on stdout:
// connected <server>, moving <from> <why>, message <nick> <text>,
// acked <tag>, unacked <tag>, closed <reason>; then done <seen> <acked>.
// Node 20 needs --experimental-websocket for the WebSocket global.

import { RttpClient } from "../rttp.js";

const [url, nick, room, lines, expect] = process.argv.slice(2);
const out = (s) => process.stdout.write(`${s}\n`);
let seen = 0;
let acked = 0;
const client = new RttpClient({
  url,
  nick,
  onEvent: (e) => {
    switch (e.type) {
      case "connected": out(`connected ${e.server}`); break;
      case "moving": out(`moving ${e.from} ${e.why}`); break;
      case "message": seen += 1; out(`message ${e.nick} ${e.text}`); break;
      case "acked": acked += 1; out(`acked ${e.tag}`); break;
      case "unacked": out(`unacked ${e.tag}`); break;
      case "closed": out(`closed ${e.reason}`); break;
      default: break;
    }
  },
});

const finish = (code) => {
  out(`done ${seen} ${acked}`);
  client.quit();
  setTimeout(() => process.exit(code), 100);
};
setTimeout(() => finish(1), 40000);

await client.connect();
client.join(room);
await new Promise((r) => setTimeout(r, 500));
for (let n = 0; n < Number(lines); n++) {
  client.say(room, `${nick}-${String(n).padStart(2, "0")}`);
  await new Promise((r) => setTimeout(r, 100));
}
const check = setInterval(() => {
  if (seen >= Number(expect) && acked >= Number(lines)) {
    clearInterval(check);
    finish(0);
  }
}, 100);
