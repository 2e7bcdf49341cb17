// Generic strophe.js driver over BOSH (XEP-0124/0206) for
// tests/e2e/test_parity.py.  Usage: node bosh-driver.cjs '<json>' with
// {service, jid, password, mechanism}.  Prints one JSON object per line:
// {"event":"online","jid","mechanism","sid"} or {"event":"failed",...};
// then {"event":"element","xml"} for every stanza received,
// {"event":"offline"}.  Commands on stdin, one JSON object a line:
// {"cmd":"send","xml"}, {"cmd":"pause"} (stop sending requests: strophe's
// pause()), {"cmd":"resume"} (poll again), {"cmd":"stop"}.
// strophe.js runs in Node through strophe-node.cjs.
const { createInterface } = require("node:readline");
const { Strophe, say, mechanisms, startTimer } = require("./strophe-node.cjs");

const options = JSON.parse(process.argv[2]);
const timer = startTimer(options.timeout || 30);
const finish = (code) => {
  clearTimeout(timer);
  process.exit(code);
};

const connection = new Strophe.Connection(options.service, { mechanisms: [mechanisms[options.mechanism]] });
let online = false;
if (options.debug) {
  // options.debug: a file that gets the raw traffic
  const { appendFileSync } = require("node:fs");
  connection.rawInput = (data) => appendFileSync(options.debug, "IN " + data + "\n");
  connection.rawOutput = (data) => appendFileSync(options.debug, "OUT " + data + "\n");
}
// strophe reports AUTHFAIL without the condition: read it from the body.
let saslCondition = null;
connection.xmlInput = (body) => {
  const failure = body.getElementsByTagNameNS("urn:ietf:params:xml:ns:xmpp-sasl", "failure")[0];
  if (failure && failure.firstChild) saslCondition = failure.firstChild.localName || failure.firstChild.nodeName;
};
connection.addHandler((stanza) => {
  say({ event: "element", xml: Strophe.serialize(stanza) });
  return true;
});

connection.connect(options.jid, options.password, (status, condition) => {
  if (status === Strophe.Status.CONNECTED) {
    online = true;
    say({ event: "online", jid: connection.jid, sid: connection._proto.sid,
          mechanism: connection._sasl_mechanism && connection._sasl_mechanism.mechname });
  } else if (status === Strophe.Status.AUTHFAIL || status === Strophe.Status.CONNFAIL) {
    say({ event: "failed", status, error: saslCondition || condition || null });
    finish(2);
  } else if (status === Strophe.Status.DISCONNECTED) {
    say({ event: online ? "offline" : "failed", error: condition || null });
    finish(online ? 0 : 2);
  }
}, options.wait || 60, 1);

createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "send") {
    connection.send(new DOMParser().parseFromString(command.xml, "text/xml").documentElement);
  } else if (command.cmd === "pause") {
    connection.pause();
  } else if (command.cmd === "resume") {
    connection.resume();
  } else if (command.cmd === "stop") {
    connection.disconnect("done");
  }
});
