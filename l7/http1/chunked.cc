#include "l7/http1/chunked.h"

#include <algorithm>
#include <charconv>

#include "l7/http1/grammar.h"

namespace capstan::l7::http1 {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return (c | 0x20) - 'a' + 10;
}

bool isSpaceOrTab(char c) { return c == ' ' || c == '\t'; }

}  // namespace

ChunkedDecoder::ChunkedDecoder(uint64_t maxBodyBytes) : maxBodyBytes_(maxBodyBytes) {}

void ChunkedDecoder::reset() {
  state_ = State::kSize;
  bodyBytes_ = 0;
  chunkLeft_ = 0;
  lineBytes_ = 0;
  trailerBytes_ = 0;
  sizeDigits_ = 0;
}

// chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 7.1), one byte of framing at a
// time so that any split of the input decodes the same; chunk data is handed back as one view.
ParseStatus ChunkedDecoder::decode(std::string_view input, Step& step, ParseError& error) {
  step = {};
  const char* const begin = input.data();
  const char* const end = begin + input.size();
  const char* p = begin;
  auto consumedTo = [&](const char* at) { step.consumed = static_cast<size_t>(at - begin); };

  while (p != end) {
    if (state_ == State::kData) {
      // One run per call: a second chunk's data waits for the next call.
      if (!step.data.empty()) {
        consumedTo(p);
        return ParseStatus::kIncomplete;
      }
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>(chunkLeft_, static_cast<uint64_t>(end - p)));
      step.data = std::string_view(p, n);
      p += n;
      chunkLeft_ -= n;
      if (chunkLeft_ == 0) state_ = State::kDataCr;
      continue;
    }
    if (state_ == State::kDone) break;

    const char c = *p++;
    if (state_ <= State::kSizeLf && ++lineBytes_ > kMaxChunkLineBytes) {
      return fail(error, 400, "chunk line too long");
    }
    if (state_ >= State::kTrailerLineStart && ++trailerBytes_ > kMaxTrailerBytes) {
      return fail(error, 431, "trailer section too large");
    }
    switch (state_) {
      case State::kSize:
        if (isHexDigit(c)) {
          // RFC 9112 7.1: the size must not overflow; 16 hex digits hold any uint64_t.
          if (++sizeDigits_ > 16) return fail(error, 400, "chunk size too long");
          chunkLeft_ = chunkLeft_ * 16 + static_cast<uint64_t>(hexValue(c));
          if (chunkLeft_ > maxBodyBytes_ - bodyBytes_) return fail(error, 413, "body too large");
          break;
        }
        if (sizeDigits_ == 0) return fail(error, 400, "invalid chunk size");
        if (c == ';') {
          state_ = State::kExtNameStart;
        } else if (isSpaceOrTab(c)) {
          state_ = State::kExtBws;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else {
          return fail(error, 400, "invalid chunk size");
        }
        break;
      // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), RFC 9112
      // 7.1.1: parsed to find the line's end, then ignored.
      case State::kExtBws:
        if (c == ';') {
          state_ = State::kExtNameStart;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (!isSpaceOrTab(c)) {
          return fail(error, 400, "invalid chunk extension");
        }
        break;
      case State::kExtNameStart:
        if (isTchar(c)) {
          state_ = State::kExtName;
        } else if (!isSpaceOrTab(c)) {
          return fail(error, 400, "invalid chunk extension");
        }
        break;
      case State::kExtName:
      case State::kExtAfterName:
        if (c == '=') {
          state_ = State::kExtValueStart;
        } else if (c == ';') {
          state_ = State::kExtNameStart;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (isSpaceOrTab(c)) {
          state_ = State::kExtAfterName;
        } else if (!(state_ == State::kExtName && isTchar(c))) {
          return fail(error, 400, "invalid chunk extension");
        }
        break;
      case State::kExtValueStart:
        if (c == '"') {
          state_ = State::kExtQuoted;
        } else if (isTchar(c)) {
          state_ = State::kExtToken;
        } else if (!isSpaceOrTab(c)) {
          return fail(error, 400, "invalid chunk extension");
        }
        break;
      case State::kExtToken:
        if (c == ';') {
          state_ = State::kExtNameStart;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (isSpaceOrTab(c)) {
          state_ = State::kExtBws;
        } else if (!isTchar(c)) {
          return fail(error, 400, "invalid chunk extension");
        }
        break;
      case State::kExtQuoted:
        // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (RFC 9110 5.6.4).
        if (c == '"') {
          state_ = State::kExtBws;
        } else if (c == '\\') {
          state_ = State::kExtQuotedPair;
        } else if (!isFieldValueChar(c)) {
          return fail(error, 400, "invalid chunk extension");
        }
        break;
      case State::kExtQuotedPair:
        if (!isFieldValueChar(c)) return fail(error, 400, "invalid chunk extension");
        state_ = State::kExtQuoted;
        break;
      case State::kSizeLf:
        if (c != '\n') return fail(error, 400, "bare CR in chunk line");
        bodyBytes_ += chunkLeft_;
        lineBytes_ = 0;
        sizeDigits_ = 0;
        state_ = chunkLeft_ == 0 ? State::kTrailerLineStart : State::kData;
        break;
      case State::kDataCr:
        if (c != '\r') return fail(error, 400, "missing CRLF after chunk data");
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail(error, 400, "missing CRLF after chunk data");
        state_ = State::kSize;
        break;
      // trailer-section = *( field-line CRLF ), RFC 9112 7.1.2: checked as a head's fields are,
      // then dropped (the ingress forwards no trailers).
      case State::kTrailerLineStart:
        if (c == '\r') {
          state_ = State::kEndLf;
        } else if (isTchar(c)) {
          state_ = State::kTrailerName;
        } else if (isSpaceOrTab(c)) {
          return fail(error, 400, "obs-fold in trailers");
        } else {
          return fail(error, 400, "invalid trailer field");
        }
        break;
      case State::kTrailerName:
        if (c == ':') {
          state_ = State::kTrailerValue;
        } else if (!isTchar(c)) {
          return fail(error, 400, "invalid trailer field");
        }
        break;
      case State::kTrailerValue:
        if (c == '\r') {
          state_ = State::kTrailerLf;
        } else if (!isFieldValueChar(c)) {
          return fail(error, 400, "invalid character in trailer");
        }
        break;
      case State::kTrailerLf:
        if (c != '\n') return fail(error, 400, "bare CR in trailers");
        state_ = State::kTrailerLineStart;
        break;
      case State::kEndLf:
        if (c != '\n') return fail(error, 400, "bare CR after trailers");
        state_ = State::kDone;
        consumedTo(p);
        return ParseStatus::kComplete;
      case State::kData:
      case State::kDone:
        break;  // handled above
    }
  }
  consumedTo(p);
  return state_ == State::kDone ? ParseStatus::kComplete : ParseStatus::kIncomplete;
}

void appendChunkHeader(uint64_t size, std::string& out) {
  char digits[16];
  const auto result = std::to_chars(digits, digits + sizeof digits, size, 16);
  out.append(digits, result.ptr);
  out.append("\r\n");
}

}  // namespace capstan::l7::http1
