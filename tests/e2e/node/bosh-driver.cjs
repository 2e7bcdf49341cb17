// Generic strophe.js driver over BOSH (XEP-0124/0206) for
// tests/e2e/test_parity.py.  Usage: node bosh-driver.cjs '<json>' with
// {service, jid, password, mechanism}.  Prints one JSON object per line:
// {"event":"online","jid","mechanism","sid"} or {"event":"failed",...};
// then {"event":"element","xml"} for every stanza received,
// {"event":"offline"}.  Commands on stdin, one JSON object a line:
// {"cmd":"send","xml"}, {"cmd":"pause"} (stop sending requests: strophe's
// pause()), {"cmd":"resume"} (poll again), {"cmd":"stop"}.
// Node has no XMLHttpRequest: xhr2 provides it, with the responseXML a
// browser would parse, from @xmldom/xmldom (as in strophe-bosh.cjs).
const XHR2 = require("xhr2");
const { DOMParser } = require("@xmldom/xmldom");
const { createInterface } = require("node:readline");
globalThis.XMLHttpRequest = class extends XHR2 {
  get responseXML() {
    return this.readyState === 4 && this.responseText
      ? new DOMParser().parseFromString(this.responseText, "text/xml")
      : null;
  }
};
const { Strophe } = require("strophe.js");

const options = JSON.parse(process.argv[2]);
Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const say = (object) => process.stdout.write(JSON.stringify(object) + "\n");
const mechanisms = { PLAIN: Strophe.SASLPlain, "SCRAM-SHA-1": Strophe.SASLSHA1, "SCRAM-SHA-256": Strophe.SASLSHA256 };

const timer = setTimeout(() => {
  say({ event: "timeout" });
  process.exit(3);
}, (options.timeout || 30) * 1000);
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
