// Drives the real @xmpp/client (xmpp.js) for tests/e2e/test_websocket.py.
// Usage: node xmpp-client.mjs '<json>' with {service, domain, username,
// password, mechanism, to, body}.  Prints one JSON object per line:
// {"event":"online","jid":...,"offered":[...],"mechanism":...},
// {"event":"message","from":...,"body":...}, {"event":"offline"}.
import { client, xml } from "@xmpp/client";
import { WebSocket } from "ws";

// Node 20 has no global WebSocket (xmpp.js uses it in browsers and Node 22).
globalThis.WebSocket ??= WebSocket;

const options = JSON.parse(process.argv[2]);
const say = (object) => process.stdout.write(JSON.stringify(object) + "\n");
let offered = null;
let chosen = null;

const xmpp = client({
  service: options.service,
  domain: options.domain,
  resource: undefined,
  credentials: async (authenticate, mechanisms) => {
    offered = mechanisms;
    chosen = options.mechanism;
    await authenticate({ username: options.username, password: options.password }, chosen);
  },
});

xmpp.on("error", (err) => say({ event: "error", error: String(err && (err.condition || err.message || err)) }));

const gotMessage = new Promise((resolve) => {
  xmpp.on("stanza", (stanza) => {
    // a live message, not one stored earlier for this account (XEP-0203 delay):
    // a previous run's reply that its client never acknowledged comes back
    // from offline storage (XEP-0198 §4), which the test must not take for this run's
    if (stanza.is("message") && stanza.getChildText("body") && !stanza.getChild("delay", "urn:xmpp:delay")) {
      resolve({ from: stanza.attrs.from, body: stanza.getChildText("body") });
    }
  });
});

const timer = setTimeout(() => {
  say({ event: "timeout" });
  process.exit(3);
}, (options.timeout || 20) * 1000);

try {
  const address = await xmpp.start();
  say({ event: "online", jid: address.toString(), offered, mechanism: chosen });
  await xmpp.send(xml("presence"));
  if (options.to) {
    await xmpp.send(xml("message", { type: "chat", to: options.to, id: "m1" }, xml("body", {}, options.body)));
  }
  const message = await gotMessage;
  say({ event: "message", ...message });
  await xmpp.stop();
  say({ event: "offline" });
  clearTimeout(timer);
  process.exit(0);
} catch (err) {
  say({ event: "failed", error: String(err && (err.condition || err.message || err)) });
  clearTimeout(timer);
  process.exit(2);
}
