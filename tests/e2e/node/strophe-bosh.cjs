// Drives the real strophe.js over BOSH (XEP-0124/0206) for
// tests/e2e/test_bosh.py.  Usage: node strophe-bosh.cjs '<json>' with
// {service, jid, password, mechanism, to, body}.  Prints one JSON object per
// line: {"event":"online","jid":...,"mechanism":...},
// {"event":"message","from":...,"body":...}, {"event":"offline"}.
// strophe.js runs in Node through strophe-node.cjs.
const { Strophe, $msg, $pres, say, mechanisms, startTimer } = require("./strophe-node.cjs");

const options = JSON.parse(process.argv[2]);
const timer = startTimer(options.timeout || 20);

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
