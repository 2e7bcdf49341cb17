// Generic @xmpp/client (xmpp.js) driver over WebSocket (RFC 7395) for
// tests/e2e/test_parity.py.  Usage: node ws-driver.mjs '<json>' with
// {service, domain, username, password, mechanism}.  Prints one JSON object
// per line: {"event":"online","jid","mechanism","sm":{enabled,id}} or
// {"event":"failed","error"}; then {"event":"element","xml"} for every
// element received (stanzas and XEP-0198 nonzas), {"event":"resumed"},
// {"event":"offline"}.  Commands on stdin, one JSON object a line:
// {"cmd":"send","xml"} (parsed and sent through the stream-management
// middleware so it is counted), {"cmd":"cut"} (terminate the socket with
// no closing handshake; the reconnect module then resumes), {"cmd":"stop"}.
import { client } from "@xmpp/client";
import parse from "@xmpp/xml/lib/parse.js";
import { WebSocket } from "ws";
import { createInterface } from "node:readline";

globalThis.WebSocket ??= WebSocket;

const options = JSON.parse(process.argv[2]);
const say = (object) => process.stdout.write(JSON.stringify(object) + "\n");
let chosen = null;

const xmpp = client({
  service: options.service,
  domain: options.domain,
  credentials: async (authenticate, mechanisms) => {
    chosen = options.mechanism;
    await authenticate({ username: options.username, password: options.password }, chosen);
  },
});

xmpp.on("error", (err) => say({ event: "error", error: String(err && (err.condition || err.message || err)) }));
xmpp.on("element", (element) => say({ event: "element", xml: element.toString() }));
xmpp.streamManagement.on("resumed", () => say({ event: "resumed", sm: { enabled: xmpp.streamManagement.enabled, id: xmpp.streamManagement.id } }));

const timer = setTimeout(() => {
  say({ event: "timeout" });
  process.exit(3);
}, (options.timeout || 30) * 1000);

const finish = (code) => {
  clearTimeout(timer);
  process.exit(code);
};

try {
  const address = await xmpp.start();
  // <enable/> goes out after bind; <enabled/> arrives right after.
  for (let i = 0; i < 50 && !xmpp.streamManagement.id; i++) await new Promise((r) => setTimeout(r, 20));
  say({ event: "online", jid: address.toString(), mechanism: chosen,
        sm: { enabled: xmpp.streamManagement.enabled, id: xmpp.streamManagement.id } });
} catch (err) {
  say({ event: "failed", error: String(err && (err.condition || err.message || err)) });
  finish(2);
}

createInterface({ input: process.stdin }).on("line", async (line) => {
  const command = JSON.parse(line);
  try {
    if (command.cmd === "send") {
      await xmpp.send(parse(command.xml));
    } else if (command.cmd === "cut") {
      xmpp.socket.socket.terminate();
    } else if (command.cmd === "stop") {
      await xmpp.stop();
      say({ event: "offline" });
      finish(0);
    }
  } catch (err) {
    say({ event: "error", error: String(err && (err.message || err)) });
  }
});
