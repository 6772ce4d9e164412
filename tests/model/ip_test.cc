#include "model/ip.h"

#include <gtest/gtest.h>

namespace capstan {
namespace {

TEST(IpAddress, ParsesAndFormatsIPv4) {
  auto ip = IpAddress::parse("10.96.0.10");
  ASSERT_TRUE(ip);
  EXPECT_TRUE(ip->isV4());
  EXPECT_EQ(ip->v4Value(), 0x0a60000au);
  EXPECT_EQ(ip->toString(), "10.96.0.10");
  EXPECT_EQ(IpAddress::v4(0x7f000001).toString(), "127.0.0.1");
  EXPECT_TRUE(IpAddress::parse("127.0.0.1")->isLoopback());
  EXPECT_TRUE(IpAddress::parse("0.0.0.0")->isUnspecified());
}

TEST(IpAddress, RejectsMalformedIPv4) {
  for (const char* bad :
       {"", "10", "10.0.0", "10.0.0.0.1", "256.0.0.1", "010.0.0.1", "1.2.3.", ".1.2.3", "1..2.3",
        "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "a.b.c.d", "1.2.3.4/32", "99999999999.1.1.1"}) {
    EXPECT_FALSE(IpAddress::parse(bad)) << bad;
  }
}

TEST(IpAddress, ParsesIPv6CanonicallyAndRejectsZones) {
  auto ip = IpAddress::parse("FD00:0:0::0001");
  ASSERT_TRUE(ip);
  EXPECT_TRUE(ip->isV6());
  EXPECT_EQ(ip->toString(), "fd00::1");
  EXPECT_TRUE(IpAddress::parse("::1")->isLoopback());
  EXPECT_TRUE(IpAddress::parse("::")->isUnspecified());
  EXPECT_EQ(IpAddress::parse("::ffff:10.0.0.1")->family(), IpFamily::kV6);
  for (const char* bad : {"fe80::1%eth0", ":::", "1::2::3", "12345::", "g::1", "[::1]"}) {
    EXPECT_FALSE(IpAddress::parse(bad)) << bad;
  }
}

TEST(IpAddress, OrdersByFamilyThenBytes) {
  auto a = *IpAddress::parse("10.0.0.2");
  auto b = *IpAddress::parse("10.0.0.10");
  auto c = *IpAddress::parse("::1");
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(a, *IpAddress::parse("10.0.0.2"));
}

TEST(IpAddress, JoinsHostAndPort) {
  EXPECT_EQ(joinHostPort(*IpAddress::parse("10.0.0.1"), 80), "10.0.0.1:80");
  EXPECT_EQ(joinHostPort(*IpAddress::parse("fd00::1"), 8080), "[fd00::1]:8080");
}

TEST(Cidr, ParsesMasksAndContains) {
  auto c = Cidr::parse("10.96.0.1/12");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->toString(), "10.96.0.0/12");
  EXPECT_TRUE(c->contains(*IpAddress::parse("10.111.255.255")));
  EXPECT_FALSE(c->contains(*IpAddress::parse("10.112.0.0")));
  EXPECT_FALSE(c->contains(*IpAddress::parse("fd00::1")));
  auto all = Cidr::parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains(*IpAddress::parse("203.0.113.9")));
  auto v6 = Cidr::parse("fd00:10::/64");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(*IpAddress::parse("fd00:10::abcd")));
  EXPECT_FALSE(v6->contains(*IpAddress::parse("fd00:11::1")));
  EXPECT_EQ(Cidr::parse("fd00:0:0:1:ffff::1/65")->toString(), "fd00:0:0:1:8000::/65");
  EXPECT_EQ(Cidr::parse("10.0.0.1/32")->toString(), "10.0.0.1/32");
}

TEST(Cidr, RejectsMalformed) {
  for (const char* bad : {"10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/08",
                          "fd00::/129", "x/8", "10.0.0.0/8/8", "10.0.0.0/1234"}) {
    EXPECT_FALSE(Cidr::parse(bad)) << bad;
  }
}

}  // namespace
}  // namespace capstan
