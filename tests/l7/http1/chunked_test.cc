#include "l7/http1/chunked.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace capstan::l7::http1 {
namespace {

using std::string_literals::operator""s;

// What feeding a body in pieces gave: the status of the last call, the body bytes, how many bytes
// the decoder used in all, and the error.
struct Decoded {
  ParseStatus status = ParseStatus::kIncomplete;
  std::string data;
  size_t consumed = 0;
  ParseError error;
};

// Feeds `pieces` one after the other as a connection would deliver them: unused bytes stay
// buffered, and the decoder is called again at once while it uses some.
Decoded feed(ChunkedDecoder& decoder, const std::vector<std::string>& pieces) {
  Decoded out;
  std::string pending;
  for (const std::string& piece : pieces) {
    pending += piece;
    while (!pending.empty()) {
      ChunkedDecoder::Step step;
      out.status = decoder.decode(pending, step, out.error);
      if (out.status == ParseStatus::kError) return out;
      EXPECT_LE(step.consumed, pending.size());
      out.data.append(step.data);
      out.consumed += step.consumed;
      pending.erase(0, step.consumed);
      if (out.status == ParseStatus::kComplete) return out;
      if (step.consumed == 0) break;
    }
  }
  return out;
}

Decoded feedWhole(std::string_view input, uint64_t maxBody = UINT64_MAX) {
  ChunkedDecoder decoder(maxBody);
  return feed(decoder, {std::string(input)});
}

std::vector<std::string> bytes(std::string_view input) {
  std::vector<std::string> out;
  for (char c : input) out.emplace_back(1, c);
  return out;
}

struct ValidBody {
  const char* name;
  std::string encoded;
  std::string decoded;
};

const std::vector<ValidBody>& validBodies() {
  static const std::vector<ValidBody> rows = {
      {"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"},
      {"empty body", "0\r\n\r\n", ""},
      {"three chunks", "3\r\nabc\r\n1\r\nd\r\n2\r\nef\r\n0\r\n\r\n", "abcdef"},
      {"upper and lower hex", "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n",
       "0123456789abcdefghijk"},
      {"leading zeros, 16 digits", "0000000000000003\r\nabc\r\n0000\r\n\r\n", "abc"},
      {"data holding CRLF and NUL", "5\r\n\r\n\0\r\n\r\n0\r\n\r\n"s, "\r\n\0\r\n"s},
      {"extensions", "3;name\r\nabc\r\n2;a=b;c=\"d e\"\r\nfg\r\n0;last\r\n\r\n", "abcfg"},
      {"extensions with BWS", "3 ; a = b ;c\t=\t\"x\\\"y\" \r\nabc\r\n0 \r\n\r\n", "abc"},
      {"extension quoted-pair and obs-text", "1;q=\"\\\xff\xfe\"\r\nz\r\n0\r\n\r\n", "z"},
      {"trailers", "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Empty:\r\nX-Tab:\ta\tb\r\n\r\n", "hi"},
  };
  return rows;
}

TEST(ChunkedDecoderTest, DecodesValidBodiesWholeAndStopsAtTheirEnd) {
  for (const ValidBody& row : validBodies()) {
    SCOPED_TRACE(row.name);
    const std::string input = row.encoded + "GET / HTTP/1.1\r\n";
    ChunkedDecoder decoder;
    const Decoded d = feed(decoder, {input});
    ASSERT_EQ(d.status, ParseStatus::kComplete) << d.error.reason;
    EXPECT_EQ(d.data, row.decoded);
    EXPECT_EQ(d.consumed, row.encoded.size());
    EXPECT_TRUE(decoder.done());
    EXPECT_EQ(decoder.bodyBytes(), row.decoded.size());
  }
}

TEST(ChunkedDecoderTest, DecodesTheSameSplitAtEveryByteAndByteByByte) {
  for (const ValidBody& row : validBodies()) {
    SCOPED_TRACE(row.name);
    for (size_t i = 0; i <= row.encoded.size(); ++i) {
      ChunkedDecoder decoder;
      const Decoded d = feed(decoder, {row.encoded.substr(0, i), row.encoded.substr(i)});
      ASSERT_EQ(d.status, ParseStatus::kComplete) << "split at " << i << ": " << d.error.reason;
      ASSERT_EQ(d.data, row.decoded) << "split at " << i;
      ASSERT_EQ(d.consumed, row.encoded.size()) << "split at " << i;
    }
    ChunkedDecoder decoder;
    const Decoded d = feed(decoder, bytes(row.encoded));
    ASSERT_EQ(d.status, ParseStatus::kComplete) << d.error.reason;
    EXPECT_EQ(d.data, row.decoded);
    // Every prefix is incomplete: the body is not done before its last byte.
    ChunkedDecoder prefixDecoder;
    const Decoded prefix = feed(prefixDecoder, {row.encoded.substr(0, row.encoded.size() - 1)});
    EXPECT_EQ(prefix.status, ParseStatus::kIncomplete);
    EXPECT_FALSE(prefixDecoder.done());
  }
}

TEST(ChunkedDecoderTest, HandsBackOneRunOfDataPerCallPointingIntoTheInput) {
  const std::string input = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
  ChunkedDecoder decoder;
  ChunkedDecoder::Step step;
  ParseError error;
  ASSERT_EQ(decoder.decode(input, step, error), ParseStatus::kIncomplete);
  EXPECT_EQ(step.data, "abc");
  EXPECT_EQ(step.data.data(), input.data() + 3);
  // The framing after the data is read, up to where the next data starts.
  EXPECT_EQ(step.consumed, 11u);
  const std::string_view rest = std::string_view(input).substr(step.consumed);
  ASSERT_EQ(decoder.decode(rest, step, error), ParseStatus::kComplete);
  EXPECT_EQ(step.data, "def");
  EXPECT_EQ(step.data.data(), rest.data());
  EXPECT_EQ(step.consumed, rest.size());
  // Done: nothing more is used.
  ASSERT_EQ(decoder.decode("GET", step, error), ParseStatus::kComplete);
  EXPECT_EQ(step.consumed, 0u);
  EXPECT_TRUE(step.data.empty());
}

TEST(ChunkedDecoderTest, ResetStartsAnotherBody) {
  ChunkedDecoder decoder;
  EXPECT_EQ(feed(decoder, {"2\r\nab\r\n0\r\n\r\n"}).data, "ab");
  EXPECT_TRUE(decoder.done());
  decoder.reset();
  EXPECT_FALSE(decoder.done());
  EXPECT_EQ(decoder.bodyBytes(), 0u);
  const Decoded d = feed(decoder, {"1\r\nc\r\n0\r\n\r\n"});
  EXPECT_EQ(d.status, ParseStatus::kComplete);
  EXPECT_EQ(d.data, "c");
}

struct HostileBody {
  const char* name;
  std::string input;
  uint16_t status;
  std::string_view reason;
  uint64_t maxBody = UINT64_MAX;
};

const std::vector<HostileBody>& hostileBodies() {
  static const std::vector<HostileBody> rows = {
      {"size overflow", "ffffffffffffffffff\r\n", 400, "chunk size too long"},
      {"17 digits", "10000000000000000\r\n", 400, "chunk size too long"},
      {"17 digits of leading zeros", "00000000000000001\r\n", 400, "chunk size too long"},
      {"not hex", "x\r\n", 400, "invalid chunk size"},
      {"empty size", "\r\n", 400, "invalid chunk size"},
      {"negative", "-5\r\n", 400, "invalid chunk size"},
      {"plus sign", "+5\r\n", 400, "invalid chunk size"},
      {"0x prefix", "0x5\r\nhello\r\n", 400, "invalid chunk size"},
      {"bare LF after size", "5\nhello\r\n0\r\n\r\n", 400, "invalid chunk size"},
      {"bare CR after size", "5\rhello\r\n0\r\n\r\n", 400, "bare CR"},
      {"no CRLF after data", "5\r\nhelloX0\r\n\r\n", 400, "missing CRLF after chunk data"},
      {"data longer than its size", "3\r\nhello\r\n0\r\n\r\n", 400,
       "missing CRLF after chunk data"},
      {"bare LF after data", "5\r\nhello\n0\r\n\r\n", 400, "missing CRLF after chunk data"},
      {"bare CR after data", "5\r\nhello\r0\r\n\r\n", 400, "missing CRLF after chunk data"},
      {"extension without name", "5;\r\nhello\r\n0\r\n\r\n", 400, "invalid chunk extension"},
      {"extension without value", "5;a=\r\nhello\r\n0\r\n\r\n", 400, "invalid chunk extension"},
      {"extension name not a token", "5;a@b\r\nhello\r\n0\r\n\r\n", 400, "invalid chunk extension"},
      {"unterminated quoted value", "5;a=\"x\r\nhello\r\n0\r\n\r\n", 400,
       "invalid chunk extension"},
      {"bare LF in extension", "5;a\nhello\r\n0\r\n\r\n", 400, "invalid chunk extension"},
      {"NUL in extension", "5;a=\"\0\"\r\nhello\r\n0\r\n\r\n"s, 400, "invalid chunk extension"},
      {"garbage after BWS", "5 x\r\nhello\r\n0\r\n\r\n", 400, "invalid chunk extension"},
      {"extension over the line limit",
       "5;a=" + std::string(ChunkedDecoder::kMaxChunkLineBytes, 'b') + "\r\nhello\r\n", 400,
       "chunk line too long"},
      {"trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", 400, "obs-fold"},
      {"trailer space before colon", "0\r\nX : a\r\n\r\n", 400, "invalid trailer field"},
      {"trailer without colon", "0\r\nX\r\n\r\n", 400, "invalid trailer field"},
      {"trailer NUL", "0\r\nX: a\0\r\n\r\n"s, 400, "invalid character in trailer"},
      {"trailer bare LF", "0\r\nX: a\n\r\n", 400, "invalid character in trailer"},
      {"trailer bare CR", "0\r\nX: a\rb\r\n\r\n", 400, "bare CR"},
      {"bare LF ending the body", "0\r\n\n", 400, "invalid trailer field"},
      {"bare CR ending the body", "0\r\n\rX", 400, "bare CR"},
      {"trailers over the limit",
       "0\r\nX: " + std::string(ChunkedDecoder::kMaxTrailerBytes, 'v') + "\r\n\r\n", 431,
       "trailer section too large"},
      {"one chunk over the body limit", "b\r\nhello world\r\n0\r\n\r\n", 413, "body too large", 10},
      {"sum over the body limit", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 413, "body too large",
       10},
      {"huge size over the body limit", "ffffffffffffffff\r\n", 413, "body too large", 1 << 20},
  };
  return rows;
}

TEST(ChunkedDecoderTest, RefusesHostileBodiesWholeAndByteByByte) {
  for (const HostileBody& row : hostileBodies()) {
    SCOPED_TRACE(row.name);
    ChunkedDecoder whole(row.maxBody);
    const Decoded d = feed(whole, {row.input});
    EXPECT_EQ(d.status, ParseStatus::kError);
    if (d.status != ParseStatus::kError) continue;
    EXPECT_EQ(d.error.status, row.status);
    EXPECT_NE(d.error.reason.find(row.reason), std::string_view::npos) << d.error.reason;
    ChunkedDecoder split(row.maxBody);
    const Decoded b = feed(split, bytes(row.input));
    EXPECT_EQ(b.status, ParseStatus::kError);
    EXPECT_EQ(b.error.status, row.status);
    EXPECT_EQ(b.error.reason, d.error.reason);
  }
}

TEST(ChunkedDecoderTest, BodyExactlyAtTheLimitIsAccepted) {
  const Decoded d = feedWhole("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 10);
  EXPECT_EQ(d.status, ParseStatus::kComplete);
  EXPECT_EQ(d.data, "helloworld");
}

TEST(ChunkedDecoderTest, ALineAtTheLimitIsAccepted) {
  const std::string line = "1;a=" + std::string(ChunkedDecoder::kMaxChunkLineBytes - 6, 'b');
  ASSERT_EQ(line.size() + 2, ChunkedDecoder::kMaxChunkLineBytes);
  const Decoded d = feedWhole(line + "\r\nz\r\n0\r\n\r\n");
  EXPECT_EQ(d.status, ParseStatus::kComplete) << d.error.reason;
  EXPECT_EQ(d.data, "z");
}

TEST(AppendChunkHeaderTest, WritesLowerCaseHexAndCrlf) {
  std::string out;
  appendChunkHeader(0, out);
  appendChunkHeader(26, out);
  appendChunkHeader(8192, out);
  appendChunkHeader(UINT64_MAX, out);
  EXPECT_EQ(out, "0\r\n1a\r\n2000\r\nffffffffffffffff\r\n");
  EXPECT_EQ(kLastChunk, "0\r\n\r\n");
}

// What the ingress writes, its decoder reads back.
TEST(AppendChunkHeaderTest, ReEncodedBodyDecodesToTheSameBytes) {
  std::string encoded;
  const std::vector<std::string> chunks = {"a", std::string(300, 'b'), "\r\n0\r\n\r\n"};
  for (const std::string& c : chunks) {
    appendChunkHeader(c.size(), encoded);
    encoded += c + "\r\n";
  }
  encoded += kLastChunk;
  const Decoded d = feedWhole(encoded);
  EXPECT_EQ(d.status, ParseStatus::kComplete);
  EXPECT_EQ(d.data, chunks[0] + chunks[1] + chunks[2]);
  EXPECT_EQ(d.consumed, encoded.size());
}

}  // namespace
}  // namespace capstan::l7::http1
