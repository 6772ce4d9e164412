// Classic pcap files (the libpcap format net_pcap reads and writes): a 24-byte global header and a
// 16-byte header before each frame. Enough for the golden tests of the DPDK shell: Ethernet
// frames, written with microsecond timestamps, read back in either precision.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "model/result.h"

namespace capstan::dataplane::test {

inline constexpr uint32_t kPcapMagicMicros = 0xa1b2c3d4;
inline constexpr uint32_t kPcapMagicNanos = 0xa1b23c4d;
inline constexpr uint32_t kPcapLinkTypeEthernet = 1;

namespace pcap_detail {
inline void put32(std::vector<uint8_t>& out, uint32_t v) {  // little endian, as written here
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
inline uint32_t get32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
}  // namespace pcap_detail

inline Status writePcap(const std::string& path, const std::vector<std::vector<uint8_t>>& frames) {
  using namespace pcap_detail;
  std::vector<uint8_t> out;
  put32(out, kPcapMagicMicros);
  put16(out, 2);  // version 2.4
  put16(out, 4);
  put32(out, 0);  // thiszone
  put32(out, 0);  // sigfigs
  put32(out, 65535);
  put32(out, kPcapLinkTypeEthernet);
  uint32_t micros = 0;
  for (const auto& frame : frames) {
    put32(out, 1'700'000'000);
    put32(out, micros++);
    put32(out, static_cast<uint32_t>(frame.size()));
    put32(out, static_cast<uint32_t>(frame.size()));
    out.insert(out.end(), frame.begin(), frame.end());
  }
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  if (!f) return Error(path + ": cannot create");
  if (std::fwrite(out.data(), 1, out.size(), f.get()) != out.size()) {
    return Error(path + ": short write");
  }
  return okStatus();
}

inline Result<std::vector<std::vector<uint8_t>>> readPcap(const std::string& path) {
  using namespace pcap_detail;
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return Error(path + ": cannot open");
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 16);
  for (int i = 0; i < 4096; ++i) {  // bounded: test captures are small
    const size_t n = std::fread(chunk.data(), 1, chunk.size(), f.get());
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
    if (n < chunk.size()) break;
  }
  if (bytes.size() < 24) return Error(path + ": no pcap global header");
  const uint32_t magic = get32(bytes.data());
  if (magic != kPcapMagicMicros && magic != kPcapMagicNanos) {
    return Error(path + ": not a little-endian pcap file");
  }
  if (get32(bytes.data() + 20) != kPcapLinkTypeEthernet) return Error(path + ": not Ethernet");
  std::vector<std::vector<uint8_t>> frames;
  size_t at = 24;
  while (at < bytes.size()) {
    if (bytes.size() - at < 16) return Error(path + ": truncated record header");
    const uint32_t captured = get32(bytes.data() + at + 8);
    at += 16;
    if (bytes.size() - at < captured) return Error(path + ": truncated record");
    frames.emplace_back(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                        bytes.begin() + static_cast<std::ptrdiff_t>(at + captured));
    at += captured;
  }
  return frames;
}

}  // namespace capstan::dataplane::test
