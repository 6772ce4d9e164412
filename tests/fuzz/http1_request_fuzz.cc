// Fuzz target: arbitrary bytes as what a client sends the ingress — a request head, maybe a
// chunked body — and as what an upstream answers. Checks the codec's invariants: every view lies
// in the input, framing is consistent, a head arriving in pieces parses the same, the canonical
// head the ingress forwards parses back to the same request, and the chunked decoder decodes the
// same whole and byte by byte.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "l7/http1/chunked.h"
#include "l7/http1/forward.h"
#include "l7/http1/message.h"

namespace {

using namespace capstan::l7::http1;

void check(bool ok) {
  if (!ok) std::abort();
}

bool inside(std::string_view input, std::string_view view) {
  if (view.empty()) return true;
  return view.data() >= input.data() && view.data() + view.size() <= input.data() + input.size();
}

bool knownRequestStatus(uint16_t status) {
  switch (status) {
    case 400:
    case 413:
    case 414:
    case 417:
    case 431:
    case 501:
    case 505:
      return true;
    default:
      return false;
  }
}

void checkRequest(std::string_view input, const Limits& limits, const RequestHead& head) {
  check(head.headLength > 0 && head.headLength <= input.size());
  check(head.headLength <= limits.maxHeadBytes);
  check(head.headers.size() <= limits.maxHeaders);
  const std::string_view whole = input.substr(0, head.headLength);
  for (std::string_view v : {head.methodText, head.target, head.host, head.upgradeProtocol}) {
    check(inside(whole, v));
  }
  for (std::string_view v : {head.path, head.pathAndQuery}) {
    check(inside(whole, v) || v == "/" || v == "*");
  }
  for (const Header& h : head.headers) check(inside(whole, h.name) && inside(whole, h.value));
  check(!head.methodText.empty() && !head.target.empty());
  check(head.minorVersion <= 1);
  check(head.body != BodyKind::kUntilClose);
  if (head.body != BodyKind::kContentLength) check(head.contentLength == 0);
  if (head.body == BodyKind::kChunked) check(head.minorVersion == 1);
  if (head.upgrade || head.expectContinue) check(head.minorVersion == 1);
}

// The canonical head the ingress sends upstream must parse back to the same request.
void checkForwarded(const RequestHead& head) {
  std::string upstream;
  appendUpstreamRequestHead(head, {"192.0.2.1", "https", "fuzz-id"}, upstream);
  Limits roomy;
  roomy.maxRequestLine = upstream.size();
  roomy.maxHeadBytes = upstream.size();
  roomy.maxHeaders = head.headers.size() + 8;
  RequestHead again;
  ParseError error;
  check(parseRequestHead(upstream, roomy, again, error) == ParseStatus::kComplete);
  check(again.headLength == upstream.size());
  check(again.methodText == head.methodText);
  check(again.path == head.path);
  check(again.pathAndQuery == head.pathAndQuery);
  check(again.host == head.host);
  check(again.body == head.body);
  check(again.contentLength == head.contentLength);
  check(again.upgrade == head.upgrade);
  check(again.minorVersion == 1);
  // And it is a fixed point: forwarded again with no further hop, byte for byte the same.
  std::string twice;
  appendUpstreamRequestHead(again, {"", "https", ""}, twice);
  check(twice == upstream);
}

struct Decoded {
  ParseStatus status = ParseStatus::kIncomplete;
  std::string data;
  size_t consumed = 0;
  uint16_t errorStatus = 0;
};

// Decodes `body` in pieces of `piece` bytes (0: whole), as a connection would deliver it.
Decoded decodeChunked(std::string_view body, size_t piece, uint64_t maxBody) {
  ChunkedDecoder decoder(maxBody);
  Decoded out;
  size_t offset = 0;  // bytes of body delivered so far
  size_t used = 0;    // bytes of body consumed so far
  while (true) {
    offset = piece == 0 ? body.size() : std::min(body.size(), offset + piece);
    while (used < offset) {
      const std::string_view pending = body.substr(used, offset - used);
      ChunkedDecoder::Step step;
      ParseError error;
      out.status = decoder.decode(pending, step, error);
      if (out.status == ParseStatus::kError) {
        check(error.status == 400 || error.status == 413 || error.status == 431);
        check(!error.reason.empty());
        out.errorStatus = error.status;
        return out;
      }
      check(step.consumed <= pending.size());
      check(inside(pending, step.data));
      out.data.append(step.data);
      used += step.consumed;
      out.consumed = used;
      if (out.status == ParseStatus::kComplete) {
        check(decoder.done());
        return out;
      }
      if (step.consumed == 0) break;
    }
    if (offset == body.size()) return out;
  }
}

void checkChunked(std::string_view body, uint64_t maxBody) {
  const Decoded whole = decodeChunked(body, 0, maxBody);
  const Decoded bytes = decodeChunked(body, 1, maxBody);
  const Decoded sevens = decodeChunked(body, 7, maxBody);
  for (const Decoded* d : {&bytes, &sevens}) {
    check(d->status == whole.status);
    check(d->errorStatus == whole.errorStatus);
    if (whole.status != ParseStatus::kError) {
      check(d->data == whole.data);
      check(d->consumed == whole.consumed);
    }
  }
}

void checkResponse(std::string_view input, const Limits& limits, Method method) {
  static ResponseHead head;
  ParseError error;
  const ParseStatus s = parseResponseHead(input, limits, method, head, error);
  if (s == ParseStatus::kError) {
    check(error.status == 502 && !error.reason.empty());
    return;
  }
  if (s != ParseStatus::kComplete) return;
  check(head.headLength > 0 && head.headLength <= input.size());
  check(head.status >= 100 && head.status <= 999);
  check(inside(input, head.reason));
  for (const Header& h : head.headers) check(inside(input, h.name) && inside(input, h.value));
  if (head.body == BodyKind::kUntilClose) check(!head.keepAlive);
  // The head the client gets parses as a response with the same status and framing.
  for (uint8_t minor : {0, 1}) {
    std::string client;
    const ClientBodyFraming framing =
        appendClientResponseHead(head, {minor, false, method}, client);
    ResponseHead again;
    Limits roomy;
    roomy.maxRequestLine = client.size();
    roomy.maxHeadBytes = client.size();
    roomy.maxHeaders = head.headers.size() + 4;
    check(parseResponseHead(client, roomy, method, again, error) == ParseStatus::kComplete);
    check(again.status == head.status);
    switch (framing) {
      case ClientBodyFraming::kNone:
        check(head.body == BodyKind::kNone);
        break;
      case ClientBodyFraming::kContentLength:
        check(again.body == BodyKind::kContentLength);
        check(again.contentLength == head.contentLength);
        break;
      case ClientBodyFraming::kChunked:
        check(minor == 1 && again.body == BodyKind::kChunked);
        break;
      case ClientBodyFraming::kUntilClose:
        check(minor == 0 && again.body == BodyKind::kUntilClose && !again.keepAlive);
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // Small limits so that inputs of a few KiB reach them; headers reused as the ingress does.
  Limits limits;
  limits.maxRequestLine = 512;
  limits.maxHeadBytes = 2048;
  limits.maxHeaders = 24;
  static RequestHead head;
  ParseError error;
  const ParseStatus s = parseRequestHead(input, limits, head, error);
  if (s == ParseStatus::kError) {
    check(knownRequestStatus(error.status) && !error.reason.empty());
    checkChunked(input, 1 << 16);
  } else if (s == ParseStatus::kIncomplete) {
    checkChunked(input, UINT64_MAX);
  } else {
    checkRequest(input, limits, head);
    // A head in pieces: every prefix is incomplete (one near the end, one in the middle).
    RequestHead partial;
    for (size_t cut : {head.headLength - 1, (size * 7) % head.headLength}) {
      check(parseRequestHead(input.substr(0, cut), limits, partial, error) ==
            ParseStatus::kIncomplete);
    }
    checkForwarded(head);
    if (head.body == BodyKind::kChunked) checkChunked(input.substr(head.headLength), 1 << 20);
  }
  checkResponse(input, limits, Method::kGet);
  checkResponse(input, limits, Method::kHead);
  return 0;
}
