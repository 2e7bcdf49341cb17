// Drives the real strophe.js over BOSH (XEP-0124/0206) for
// tests/e2e/test_bosh.py.  Usage: node strophe-bosh.cjs '<json>' with
// {service, jid, password, mechanism, to, body}.  Prints one JSON object per
// line: {"event":"online","jid":...,"mechanism":...},
// {"event":"message","from":...,"body":...}, {"event":"offline"}.
// Node has no XMLHttpRequest: xhr2 provides it, with the responseXML a
// browser would parse (xhr2 has none, and strophe 5 does not use its own
// fallback parse), from @xmldom/xmldom like strophe's Node build.
const XHR2 = require("xhr2");
const { DOMParser } = require("@xmldom/xmldom");
globalThis.XMLHttpRequest = class extends XHR2 {
  get responseXML() {
    return this.readyState === 4 && this.responseText
      ? new DOMParser().parseFromString(this.responseText, "text/xml")
      : null;
  }
};
const { Strophe, $msg, $pres } = require("strophe.js");

const options = JSON.parse(process.argv[2]);
Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const say = (object) => process.stdout.write(JSON.stringify(object) + "\n");
const mechanisms = { PLAIN: Strophe.SASLPlain, "SCRAM-SHA-1": Strophe.SASLSHA1, "SCRAM-SHA-256": Strophe.SASLSHA256 };

const timer = setTimeout(() => {
  say({ event: "timeout" });
  process.exit(3);
}, (options.timeout || 20) * 1000);

const connection = new Strophe.Connection(options.service, { mechanisms: [mechanisms[options.mechanism]] });
let online = false;
if (options.debug) {
  connection.rawInput = (data) => process.stderr.write("IN " + data + "\n");
  connection.rawOutput = (data) => process.stderr.write("OUT " + data + "\n");
}

connection.addHandler((stanza) => {
  const body = stanza.getElementsByTagName("body")[0];
  if (body) {
    say({ event: "message", from: stanza.getAttribute("from"), body: Strophe.getText(body) });
    connection.disconnect("done");
  }
  return true;
}, null, "message");

connection.connect(options.jid, options.password, (status, condition) => {
  if (status === Strophe.Status.CONNECTED) {
    online = true;
    say({
      event: "online",
      jid: connection.jid,
      sid: connection._proto.sid,
      mechanism: connection._sasl_mechanism && connection._sasl_mechanism.mechname,
    });
    connection.send($pres());
    if (options.to) {
      connection.send($msg({ to: options.to, type: "chat", id: "m1" }).c("body").t(options.body));
    }
  } else if (status === Strophe.Status.AUTHFAIL || status === Strophe.Status.CONNFAIL) {
    say({ event: "failed", status, condition: condition || null });
    clearTimeout(timer);
    process.exit(2);
  } else if (status === Strophe.Status.DISCONNECTED) {
    say({ event: online ? "offline" : "failed", condition: condition || null });
    clearTimeout(timer);
    process.exit(online ? 0 : 2);
  }
});
