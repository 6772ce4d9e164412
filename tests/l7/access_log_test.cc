// The access log's formats (a table of entries, each line parsed back: JSON by the daemon's JSON
// reader) and its writer (batches written whole to a real file; a pipe nobody reads makes it fall
// behind, drop and count).
#include "l7/access_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tests/l7/json_line.h"

namespace capstan::l7 {
namespace {

using namespace std::chrono_literals;

// 2025-01-02T03:04:05.678Z
const std::chrono::system_clock::time_point kTime =
    std::chrono::system_clock::time_point(std::chrono::seconds(1735787045)) + 678ms;

AccessLogEntry sampleEntry() {
  AccessLogEntry e;
  e.time = kTime;
  e.client = "10.0.0.1";
  e.method = "GET";
  e.target = "/a/b?c=1";
  e.minorVersion = 1;
  e.status = 200;
  e.bytesSent = 154;
  e.duration = 1'234'567ns;
  e.upstream = "10.1.0.5:8080";
  e.upstreamTime = 1'100'000ns;
  e.host = "web.example.com";
  e.route = "default/site";
  e.requestId = "abc123";
  e.userAgent = "curl/8.0";
  e.referer = "";
  return e;
}

std::string format(const AccessLogEntry& e, AccessLogFormat f) {
  std::string out;
  AccessLogFormatter(f).append(e, out);
  return out;
}

using test::jsonField;
using test::parseJsonLine;

TEST(AccessLogFormatterTest, JsonLineHasEveryField) {
  const std::string line = format(sampleEntry(), AccessLogFormat::kJson);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  control::Value doc = parseJsonLine(line);
  EXPECT_EQ(jsonField(doc, "time"), "2025-01-02T03:04:05.678Z");
  EXPECT_EQ(jsonField(doc, "client"), "10.0.0.1");
  EXPECT_EQ(jsonField(doc, "method"), "GET");
  EXPECT_EQ(jsonField(doc, "target"), "/a/b?c=1");
  EXPECT_EQ(jsonField(doc, "protocol"), "HTTP/1.1");
  EXPECT_EQ(jsonField(doc, "status"), "200");
  EXPECT_EQ(jsonField(doc, "bytes_sent"), "154");
  EXPECT_EQ(jsonField(doc, "request_time"), "0.001234");
  EXPECT_EQ(jsonField(doc, "upstream"), "10.1.0.5:8080");
  EXPECT_EQ(jsonField(doc, "upstream_time"), "0.001100");
  EXPECT_EQ(jsonField(doc, "host"), "web.example.com");
  EXPECT_EQ(jsonField(doc, "route"), "default/site");
  EXPECT_EQ(jsonField(doc, "request_id"), "abc123");
  EXPECT_EQ(jsonField(doc, "user_agent"), "curl/8.0");
  EXPECT_EQ(jsonField(doc, "referer"), "");
}

TEST(AccessLogFormatterTest, JsonAbsentUpstreamAndRouteAreNull) {
  AccessLogEntry e = sampleEntry();
  e.upstream = "";
  e.upstreamTime = -1ns;
  e.route = "";
  e.status = 404;
  e.minorVersion = 0;
  control::Value doc = parseJsonLine(format(e, AccessLogFormat::kJson));
  EXPECT_EQ(jsonField(doc, "upstream"), "(null)");
  EXPECT_EQ(jsonField(doc, "upstream_time"), "(null)");
  EXPECT_EQ(jsonField(doc, "route"), "(null)");
  EXPECT_EQ(jsonField(doc, "status"), "404");
  EXPECT_EQ(jsonField(doc, "protocol"), "HTTP/1.0");
}

TEST(AccessLogFormatterTest, JsonEscapesHostileBytesAndKeepsValidUtf8) {
  struct Case {
    std::string input;
    std::string text;     // as the line must hold it
    std::string decoded;  // as a JSON reader gives it back
  };
  const Case cases[] = {
      {"a\"b", R"("a\"b")", "a\"b"},
      {"a\\b", R"("a\\b")", "a\\b"},
      {std::string("a\nb\rc\td", 7), R"("a\nb\rc\td")", "a\nb\rc\td"},
      {std::string("a\0b", 3), R"("a\u0000b")", std::string("a\0b", 3)},
      {"\x01\x1f\x7f", R"("\u0001\u001f\u007f")", "\x01\x1f\x7f"},
      {"caf\xc3\xa9", "\"caf\xc3\xa9\"", "caf\xc3\xa9"},        // valid UTF-8 kept
      {"\xe2\x82\xac!", "\"\xe2\x82\xac!\"", "\xe2\x82\xac!"},  // a 3-byte sequence
      {"x\xffy", R"("x\u00ffy")", "x\xc3\xbfy"},                // invalid: \u00XX
      {"\xc3", R"("\u00c3")", "\xc3\x83"},                      // truncated sequence
      {"\xed\xa0\x80", R"("\u00ed\u00a0\u0080")", "\xc3\xad\xc2\xa0\xc2\x80"},  // a surrogate
  };
  for (const Case& c : cases) {
    AccessLogEntry e = sampleEntry();
    e.userAgent = c.input;
    const std::string line = format(e, AccessLogFormat::kJson);
    EXPECT_NE(line.find("\"user_agent\":" + c.text + ","), std::string::npos) << line;
    EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
    control::Value doc = parseJsonLine(line);
    EXPECT_EQ(jsonField(doc, "user_agent"), c.decoded) << c.text;
  }
}

// Plain bytes are skipped 16 at a time: a byte to escape at every offset of the blocks, in both
// formats.
TEST(AccessLogFormatterTest, EscapesAByteAtAnyOffsetOfALongString) {
  struct Special {
    std::string raw, json, common;
  };
  const Special specials[] = {
      {"\"", "\\\"", "\\\""},
      {"\\", "\\\\", "\\\\"},
      {"\n", "\\n", "\\x0a"},
      {"\x01", "\\u0001", "\\x01"},
      {"\x7f", "\\u007f", "\\x7f"},
      {"\xff", "\\u00ff", "\\xff"},
      {"\xc3\xa9", "\xc3\xa9", "\\xc3\\xa9"},
  };
  for (const Special& special : specials) {
    for (size_t offset = 0; offset < 48; ++offset) {
      const std::string before(offset, 'a'), after(47 - offset, 'b');
      const std::string userAgent = before + special.raw + after;
      AccessLogEntry e = sampleEntry();
      e.userAgent = userAgent;
      const std::string json = format(e, AccessLogFormat::kJson);
      EXPECT_NE(json.find("\"user_agent\":\"" + before + special.json + after + "\","),
                std::string::npos)
          << offset << ": " << json;
      const std::string common = format(e, AccessLogFormat::kCommon);
      EXPECT_NE(common.find(" \"" + before + special.common + after + "\" host="),
                std::string::npos)
          << offset << ": " << common;
    }
  }
}

TEST(AccessLogFormatterTest, CommonLine) {
  EXPECT_EQ(format(sampleEntry(), AccessLogFormat::kCommon),
            "10.0.0.1 - - [02/Jan/2025:03:04:05 +0000] \"GET /a/b?c=1 HTTP/1.1\" 200 154 \"-\" "
            "\"curl/8.0\" host=\"web.example.com\" route=\"default/site\" "
            "upstream=\"10.1.0.5:8080\" request_time=0.001234 upstream_time=0.001100 "
            "request_id=\"abc123\"\n");
  AccessLogEntry refused;
  refused.time = kTime;
  refused.client = "10.0.0.2";
  refused.status = 400;
  refused.bytesSent = 80;
  EXPECT_EQ(format(refused, AccessLogFormat::kCommon),
            "10.0.0.2 - - [02/Jan/2025:03:04:05 +0000] \"-\" 400 80 \"-\" \"-\" host=\"-\" "
            "route=\"-\" upstream=\"-\" request_time=0.000000 upstream_time=- request_id=\"-\"\n");
}

TEST(AccessLogFormatterTest, CommonEscapesQuotesBackslashesAndControlBytes) {
  AccessLogEntry e = sampleEntry();
  const std::string userAgent("a\"b\\c\nd\x01\x7f\xff e", 12);
  e.userAgent = userAgent;
  e.target = "/x\"y";
  const std::string line = format(e, AccessLogFormat::kCommon);
  EXPECT_NE(line.find(R"("a\"b\\c\x0ad\x01\x7f\xff e")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("GET /x\"y HTTP/1.1")"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(AccessLogFormatterTest, TimeFollowsTheClockAcrossSeconds) {
  AccessLogFormatter formatter(AccessLogFormat::kJson);
  AccessLogEntry e = sampleEntry();
  std::string a, b, c;
  formatter.append(e, a);
  e.time += 1s + 5ms;  // another second: a new calendar conversion
  formatter.append(e, b);
  e.time -= 1s;  // back to the first second, other milliseconds
  formatter.append(e, c);
  EXPECT_EQ(jsonField(parseJsonLine(a), "time"), "2025-01-02T03:04:05.678Z");
  EXPECT_EQ(jsonField(parseJsonLine(b), "time"), "2025-01-02T03:04:06.683Z");
  EXPECT_EQ(jsonField(parseJsonLine(c), "time"), "2025-01-02T03:04:05.683Z");
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(AccessLogWriterTest, WritesEveryLineWholeFromSeveralThreads) {
  char path[] = "/tmp/capstan-access-log-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  constexpr int kThreads = 4;
  constexpr int kLines = 5000;
  {
    AccessLogWriter::Options options;
    options.maxQueuedBytes = size_t{64} << 20;  // room for all: this test is about whole lines
    auto writer = AccessLogWriter::open(path, options);
    ASSERT_TRUE(writer.ok()) << writer.error().message();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        AccessLogBuffer buffer(*writer, AccessLogFormat::kJson);
        AccessLogEntry e = sampleEntry();
        for (int i = 0; i < kLines; ++i) {
          std::string id = std::to_string(t) + "-" + std::to_string(i);
          e.requestId = id;
          buffer.log(e);
        }
      });
    }
    for (auto& t : threads) t.join();
    const AccessLogCounters counters = (*writer)->counters();
    EXPECT_EQ(counters.droppedLines, 0u);
  }  // the writer writes what is queued before it closes
  const std::string text = readFile(path);
  std::istringstream in(text);
  std::string line;
  std::vector<int> next(kThreads, 0);
  size_t lines = 0;
  while (std::getline(in, line)) {
    control::Value doc = parseJsonLine(line);
    const std::string id = jsonField(doc, "request_id");
    const size_t dash = id.find('-');
    ASSERT_NE(dash, std::string::npos) << line;
    const int t = std::stoi(id.substr(0, dash));
    const int i = std::stoi(id.substr(dash + 1));
    EXPECT_EQ(i, next[t]) << "lines of one worker keep their order";
    next[t] = i + 1;
    ++lines;
  }
  EXPECT_EQ(lines, size_t{kThreads} * kLines);
  ::unlink(path);
}

TEST(AccessLogWriterTest, AWriterThatFallsBehindDropsAndCountsWithoutBlocking) {
  int pipeFds[2];
  ASSERT_EQ(::pipe(pipeFds), 0);  // nobody reads pipeFds[0]
  const std::string path = "/proc/self/fd/" + std::to_string(pipeFds[1]);
  AccessLogWriter::Options options;
  options.maxQueuedBytes = 256 * 1024;
  options.closeTimeout = 100ms;
  auto writer = AccessLogWriter::open(path, options);
  ASSERT_TRUE(writer.ok()) << writer.error().message();
  constexpr uint64_t kLines = 20'000;  // ~6 MB: far beyond the pipe and the queue
  const auto start = std::chrono::steady_clock::now();
  {
    AccessLogBuffer buffer(*writer, AccessLogFormat::kJson);
    for (uint64_t i = 0; i < kLines; ++i) buffer.log(sampleEntry());
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 5s) << "the logging side never waits on the pipe";
  const AccessLogCounters counters = (*writer)->counters();
  EXPECT_GT(counters.droppedLines, 0u);
  EXPECT_LE(counters.bytes, uint64_t{64 * 1024}) << "no more than the pipe holds";
  writer->reset();  // gives up on the pipe after closeTimeout
  ::close(pipeFds[0]);
  ::close(pipeFds[1]);
}

TEST(AccessLogWriterTest, OpenFailureNamesThePath) {
  auto writer = AccessLogWriter::open("/nonexistent-dir/access.log");
  ASSERT_FALSE(writer.ok());
  EXPECT_NE(writer.error().message().find("/nonexistent-dir/access.log"), std::string::npos)
      << writer.error().message();
}

}  // namespace
}  // namespace capstan::l7
