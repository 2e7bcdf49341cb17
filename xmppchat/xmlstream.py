"""
A hardened incremental XML stream parser (RFC 6120 §4, §11).

Bytes from the network are parsed with C{pyexpat} directly into
L{twisted.words.xish.domish.Element} trees, so that Twisted and wokkel helpers
keep working on what we produce, while enforcing:

  - the restrictions on XML of RFC 6120 §11.1: no DTD (hence no entity
    declarations and no references to anything but the predefined entities),
    no comments, no processing instructions => C{restricted-xml};
  - well-formedness and UTF-8 (RFC 6120 §11.3, §11.6) => C{not-well-formed};
    an XML declaration naming another encoding, or a UTF-16 byte order
    mark => C{unsupported-encoding};
  - resource limits (RFC 6120 §13.12) on the bytes of one stanza, the nesting
    depth, the attributes per element and the elements per stanza =>
    C{policy-violation}.

L{StreamParser} handles one C{<stream:stream>} document (RFC 6120 §4.2-§4.4,
with restarts, §4.3.3); L{FrameParser} handles the one-element-per-message
framing of XMPP over WebSocket (RFC 7395 §3.3). Errors are L{StreamError}s
whose condition names are those of RFC 6120 §4.9.3.
"""

from __future__ import annotations

from collections.abc import Callable

import pyexpat

from twisted.words.xish import domish

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_XMPP_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_CLIENT = "jabber:client"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_XML = "http://www.w3.org/XML/1998/namespace"

MAX_STANZA_BYTES = 262144
MAX_DEPTH = 64
MAX_ATTRIBUTES = 64
MAX_ELEMENTS = 10000

# Text runs reach our handler in pieces of at most this many bytes; pieces are
# joined once per run, so small pieces cost only a call each. Kept small
# because pyexpat allocates it per parser, i.e. per idle connection (32 KiB
# cost ~15 KiB of RSS per connection in bench/).
_TEXT_BUFFER_SIZE = 1024

# The per-parser table expat interns element and attribute names in is
# emptied at a stanza boundary once it holds this many names, so that a
# stream of ever new names cannot grow it without bound.
_MAX_INTERNED = 2048

_Element = domish.Element
_newElement = object.__new__
_ExpatError = pyexpat.ExpatError


class StreamError(Exception):
    """
    A stream-level error (RFC 6120 §4.9): C{condition} is one of the defined
    conditions of §4.9.3, C{text} an optional description.
    """

    def __init__(self, condition: str, text: str | None = None):
        Exception.__init__(self, condition, text)
        self.condition = condition
        self.text = text

    def __str__(self) -> str:
        if self.text:
            return f"{self.condition}: {self.text}"
        return self.condition

    def toElement(self) -> domish.Element:
        """
        The C{<stream:error/>} element for this error (RFC 6120 §4.9.2).
        """
        error = domish.Element((NS_STREAMS, "error"))
        error.addElement((NS_XMPP_STREAMS, self.condition))
        if self.text:
            error.addElement((NS_XMPP_STREAMS, "text"), content=self.text)
        return error


class _Restarted(Exception):
    """
    Raised out of expat to abandon the rest of a buffer after L{reset}.
    """


# The one namespaced attribute common on stanzas, and expat's name for it.
_XML_LANG = (NS_XML, "lang")
_XML_LANG_KEY = f"{NS_XML} lang"


def _qualifyAttributes(attrs: dict) -> None:
    """
    Turn expat's C{"uri name"} attribute keys into domish's C{(uri, name)}
    tuples, in place (moving them last, as domish does).
    """
    for key in [key for key in attrs if type(key) is str and " " in key]:
        uri, _, name = key.rpartition(" ")
        attrs[(uri, name)] = attrs.pop(key)


class _TreeBuilder:
    """
    Expat event handlers building domish trees under the configured limits.

    Top-level elements (the children of the stream root, or the single
    element of a frame) are handed to C{_elementCallback} with no parent;
    nothing is kept once they are complete. The handlers for elements and
    text are closures over their state: they run for every element.
    """

    _initialNamespace = ""

    def __init__(self, maxStanzaBytes, maxDepth, maxAttributes, maxElements):
        self.maxStanzaBytes = maxStanzaBytes
        self.maxDepth = maxDepth
        self.maxAttributes = maxAttributes
        self.maxElements = maxElements

    def _newParser(self, rootStarted: bool):
        """
        A fresh expat parser with fresh tree state; C{rootStarted} tells
        whether its top-level elements are children of a stream root still
        to come (C{False}) or the document elements themselves.
        """
        _releaseParser(getattr(self, "_parser", None))
        intern: dict[str, str] = {}
        parser = pyexpat.ParserCreate("UTF-8", " ", intern=intern)
        parser.buffer_size = _TEXT_BUFFER_SIZE
        parser.buffer_text = True
        parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)

        maxStanzaBytes = self.maxStanzaBytes
        maxDepth = self.maxDepth
        maxAttributes = self.maxAttributes
        maxElements = self.maxElements
        stack: list[domish.Element] = []
        text: list[str] = []
        namespaces = [self._initialNamespace]
        prefixes: dict[str, str] = {}
        declarations = 0
        elements = 0

        def onStart(name, attrs):
            nonlocal prefixes, declarations, elements, rootStarted
            uri, _, local = name.rpartition(" ")
            defaultUri = namespaces[-1]
            if attrs:
                if len(attrs) + declarations > maxAttributes:
                    raise StreamError("policy-violation", "too many attributes")
                if _XML_LANG_KEY in attrs:
                    attrs[_XML_LANG] = attrs.pop(_XML_LANG_KEY)
                for key in attrs:
                    if " " in key:
                        _qualifyAttributes(attrs)
                        break
            element = _newElement(_Element)
            # Unqualified: no default namespace in scope, or the framing's.
            element.uri = uri or defaultUri
            element.name = local
            element.defaultUri = defaultUri
            element.attributes = attrs
            element.children = []
            if declarations:
                element.localPrefixes = prefixes
                prefixes = {}
                declarations = 0
            else:
                element.localPrefixes = {}
            if stack:
                if len(stack) >= maxDepth:
                    raise StreamError("policy-violation", "elements nested too deeply")
                elements += 1
                if elements > maxElements:
                    raise StreamError("policy-violation", "too many elements in one stanza")
                parent = stack[-1]
                siblings = parent.children
                if text:
                    siblings.append("".join(text))
                    text.clear()
                siblings.append(element)
                element.parent = parent
                stack.append(element)
            elif rootStarted:
                element.parent = None
                self._mark = parser.CurrentByteIndex
                elements = 1
                stack.append(element)
            else:
                element.parent = None
                rootStarted = True
                self._streamStartCallback(element)
                if self._parser is not parser:
                    raise _Restarted()

        def onEnd(name):
            if stack:
                element = stack.pop()
                if text:
                    element.children.append("".join(text))
                    text.clear()
                if not stack:
                    # Expat reports where an end tag starts, but where an
                    # empty-element tag ends; the bytes tell which, and hold
                    # the end tag's ">" (if not its "</").
                    index = parser.CurrentByteIndex
                    chunk = self._chunk
                    offset = index - self._chunkStart
                    if offset < 0 or chunk.startswith(b"</", offset):
                        close = chunk.find(b">", offset if offset > 0 else 0)
                        if close >= 0:
                            index = self._chunkStart + close + 1
                    if index - self._mark > maxStanzaBytes:
                        raise StreamError("policy-violation", "stanza too large")
                    self._mark = index
                    if len(intern) > _MAX_INTERNED:
                        intern.clear()
                    self._elementCallback(element)
                    if self._parser is not parser:
                        raise _Restarted()
            else:
                self._streamEndCallback()
                if self._parser is not parser:
                    raise _Restarted()

        def onText(data):
            if stack:
                text.append(data)

        def onStartNamespace(prefix, uri):
            nonlocal declarations
            declarations += 1
            if declarations > maxAttributes:
                raise StreamError("policy-violation", "too many attributes")
            if prefix is None:
                namespaces.append(uri or "")
            else:
                prefixes[prefix] = uri or ""

        def onEndNamespace(prefix):
            if prefix is None:
                namespaces.pop()

        parser.StartElementHandler = onStart
        parser.EndElementHandler = onEnd
        parser.CharacterDataHandler = onText
        parser.StartNamespaceDeclHandler = onStartNamespace
        parser.EndNamespaceDeclHandler = onEndNamespace
        parser.StartDoctypeDeclHandler = _refuseDTD
        parser.EntityDeclHandler = _refuseEntityDeclaration
        parser.UnparsedEntityDeclHandler = _refuseEntityDeclaration
        parser.NotationDeclHandler = _refuseDTD
        parser.ElementDeclHandler = _refuseDTD
        parser.AttlistDeclHandler = _refuseDTD
        parser.ExternalEntityRefHandler = _refuseEntityReference
        parser.SkippedEntityHandler = _refuseEntityReference
        parser.XmlDeclHandler = _checkDeclaration
        parser.CommentHandler = _refuseComment
        parser.ProcessingInstructionHandler = _refuseProcessingInstruction
        self._parser = parser
        self._mark = 0
        self._chunk = b""
        self._chunkStart = 0
        return parser


def _releaseParser(parser) -> None:
    """
    Drop the tree-building handlers of a parser being replaced or killed:
    they are closures over the parser, and without this the cycle (and the
    expat state, ~10 KiB per parser) would live until a full garbage
    collection; a stream restart replaces the parser twice per login.  Safe
    from within a handler: the running frame holds its own function.
    """
    if parser is not None:
        parser.StartElementHandler = None
        parser.EndElementHandler = None
        parser.CharacterDataHandler = None
        parser.StartNamespaceDeclHandler = None
        parser.EndNamespaceDeclHandler = None


# Restricted XML (RFC 6120 §11.1).


def _checkDeclaration(version, encoding, standalone):
    # Expat is told the input is UTF-8 and would otherwise ignore this.
    if encoding is not None and encoding.lower() not in ("utf-8", "utf8"):
        raise StreamError("unsupported-encoding", "XMPP streams are UTF-8 (RFC 6120 §11.6)")


# A UTF-16 byte order mark makes expat switch encodings despite being told
# UTF-8 (RFC 6120 §11.6 allows UTF-8 only).
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def _refuseDTD(*args):
    raise StreamError("restricted-xml", "DTDs are not allowed")


def _refuseEntityDeclaration(*args):
    raise StreamError("restricted-xml", "entity declarations are not allowed")


def _refuseEntityReference(*args):
    raise StreamError("restricted-xml", "entity references are not allowed")


def _refuseComment(*args):
    raise StreamError("restricted-xml", "comments are not allowed")


def _refuseProcessingInstruction(*args):
    raise StreamError("restricted-xml", "processing instructions are not allowed")


class StreamParser(_TreeBuilder):
    """
    Incremental parser for one XML stream (RFC 6120 §4).

    C{onStreamStart(root)} is called with the stream header element (which
    never gets children), C{onElement(element)} with each complete child of
    the root (a stanza or other top-level element, without parent), and
    C{onStreamEnd()} when the root is closed.

    Limits:
      - C{maxStanzaBytes}: the bytes of one top-level element, from its start
        tag to its end tag, and, until its start tag is complete, the bytes
        since the previous one ended (stream header and whitespace included);
        enforced as soon as the count passes the limit, even within one large
        L{feed};
      - C{maxDepth}: the nesting within a top-level element (which is at
        depth 1);
      - C{maxAttributes}: the attributes plus namespace declarations of one
        element;
      - C{maxElements}: the elements of one top-level element.

    When L{reset} is called from a callback, the rest of the data being fed
    is dropped: nothing sent before a stream restart (RFC 6120 §4.3.3), such
    as plaintext pipelined after C{<starttls/>}, may be read as part of the
    new stream.
    """

    def __init__(
        self,
        onStreamStart: Callable[[domish.Element], object],
        onElement: Callable[[domish.Element], object],
        onStreamEnd: Callable[[], object],
        maxStanzaBytes: int = MAX_STANZA_BYTES,
        maxDepth: int = MAX_DEPTH,
        maxAttributes: int = MAX_ATTRIBUTES,
        maxElements: int = MAX_ELEMENTS,
    ):
        _TreeBuilder.__init__(self, maxStanzaBytes, maxDepth, maxAttributes, maxElements)
        self._streamStartCallback = onStreamStart
        self._elementCallback = onElement
        self._streamEndCallback = onStreamEnd
        self.reset()

    def reset(self) -> None:
        """
        Start over with a new XML document, as on a stream restart (RFC 6120
        §4.3.3); the limits are kept and a previous error is forgotten.
        """
        self._newParser(False)
        self._fed = 0
        self._head = b""
        self._error: BaseException | None = None

    def feed(self, data: bytes) -> None:
        """
        Parse some more bytes of the stream, calling the callbacks for what
        they complete.

        @raise StreamError: on a parse error or a broken limit; the parser is
            then dead and every further call raises the same error.
        """
        if self._error is not None:
            raise self._error
        if type(data) is not bytes:
            data = bytes(data)
        parser = self._parser
        limit = self.maxStanzaBytes
        try:
            start = self._fed
            if start < 2:
                self._head = (self._head + data[:2])[:2]
                if self._head in _UTF16_MARKS:
                    raise StreamError("unsupported-encoding", "XMPP streams are UTF-8 (RFC 6120 §11.6)")
            if start + len(data) - self._mark <= limit:
                # No stanza can outgrow the limit within this data.
                self._chunk, self._chunkStart = data, start
                self._fed = start + len(data)
                parser.Parse(data)
                self._chunk = b""
                return
            offset, size = 0, len(data)
            while offset < size:
                # Feed at most one byte beyond what the current stanza may
                # still take, so that the limit is caught when it is passed.
                end = min(size, offset + limit - (self._fed - self._mark) + 1)
                self._chunk, self._chunkStart = data[offset:end], self._fed
                self._fed += end - offset
                parser.Parse(self._chunk)
                offset = end
                if self._fed - self._mark > limit:
                    raise StreamError("policy-violation", "stanza too large")
            self._chunk = b""
        except _Restarted:
            return
        except StreamError as e:
            self._kill(parser, e)
            raise
        except _ExpatError as e:
            error = StreamError("not-well-formed", str(e))
            self._kill(parser, error)
            raise error from None
        except BaseException:
            self._kill(parser, StreamError("internal-server-error"))
            raise

    def _kill(self, parser, error: StreamError) -> None:
        """
        Remember C{error} for later calls, unless a callback restarted us.
        """
        if self._parser is parser:
            self._error = error
            # Drop the handlers, and with them any partial stanza.
            _releaseParser(parser)
            self._parser = None
            self._chunk = b""


class FrameParser(_TreeBuilder):
    """
    Parser for framed XML (RFC 7395 §3.3): each L{parse} call takes one
    complete document holding a single element (C{<open/>}, a stanza,
    C{<close/>}, ...), with the limits and restrictions of L{StreamParser}.
    Unqualified elements are in C{defaultNamespace}.
    """

    def __init__(
        self,
        maxStanzaBytes: int = MAX_STANZA_BYTES,
        maxDepth: int = MAX_DEPTH,
        maxAttributes: int = MAX_ATTRIBUTES,
        maxElements: int = MAX_ELEMENTS,
        defaultNamespace: str = NS_CLIENT,
    ):
        _TreeBuilder.__init__(self, maxStanzaBytes, maxDepth, maxAttributes, maxElements)
        self._initialNamespace = defaultNamespace
        self._streamStartCallback = self._streamEndCallback = None
        self._result: domish.Element | None = None

    def _elementCallback(self, element):
        self._result = element

    def parse(self, data: bytes | str) -> domish.Element:
        """
        The element of one frame.

        @raise StreamError: when C{data} is not one acceptable element.
        """
        if isinstance(data, str):
            try:
                data = data.encode("utf-8")
            except UnicodeEncodeError:
                raise StreamError("not-well-formed", "invalid character") from None
        if len(data) > self.maxStanzaBytes:
            raise StreamError("policy-violation", "stanza too large")
        if data[:2] in _UTF16_MARKS:
            raise StreamError("unsupported-encoding", "XMPP is UTF-8 (RFC 6120 §11.6)")
        parser = self._newParser(True)
        self._chunk = data
        try:
            parser.Parse(data, True)
        except _ExpatError as e:
            raise StreamError("not-well-formed", str(e)) from None
        finally:
            # Keep neither the handlers' cycle through the parser nor a
            # partial result alive.
            _releaseParser(parser)
            self._parser = None
            self._chunk = b""
            element, self._result = self._result, None
        return element


def parseElement(data: bytes | str, defaultNamespace: str = NS_CLIENT) -> domish.Element:
    """
    One element from its serialisation (such as C{element.toXml()} of a
    stanza kept in storage), under L{FrameParser} limits with room for
    serialisation to have grown a stanza.

    @raise StreamError: when C{data} is not one acceptable element.
    """
    parser = FrameParser(4 * MAX_STANZA_BYTES, defaultNamespace=defaultNamespace)
    return parser.parse(data)
