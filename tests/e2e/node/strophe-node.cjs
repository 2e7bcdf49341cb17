// strophe.js in Node for the BOSH drivers (strophe-bosh.cjs, bosh-driver.cjs).
// Node has no XMLHttpRequest: xhr2 provides it, with the responseXML a
// browser would parse (xhr2 has none, and strophe 5 does not use its own
// fallback parse), from @xmldom/xmldom like strophe's Node build.
// Exports strophe's names plus say() (one JSON object per output line),
// the SASL mechanisms by name, and startTimer(seconds) (exit 3 on timeout).
const XHR2 = require("xhr2");
const { DOMParser } = require("@xmldom/xmldom");
globalThis.XMLHttpRequest = class extends XHR2 {
  get responseXML() {
    return this.readyState === 4 && this.responseText
      ? new DOMParser().parseFromString(this.responseText, "text/xml")
      : null;
  }
};
const strophe = require("strophe.js");
const { Strophe } = strophe;

Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const say = (object) => process.stdout.write(JSON.stringify(object) + "\n");
const mechanisms = { PLAIN: Strophe.SASLPlain, "SCRAM-SHA-1": Strophe.SASLSHA1, "SCRAM-SHA-256": Strophe.SASLSHA256 };
const startTimer = (seconds) => setTimeout(() => {
  say({ event: "timeout" });
  process.exit(3);
}, seconds * 1000);

module.exports = { ...strophe, say, mechanisms, startTimer };
