#include "control/document_reader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace capstan::control {
namespace {

struct ReadResult {
  Status status;
  std::vector<Value> docs;
  std::vector<size_t> indexes;

  std::string error() const { return status.ok() ? std::string() : status.error().message(); }
};

ReadResult readYaml(std::string_view text, const ReaderLimits& limits = {}) {
  ReadResult r;
  r.status = readYamlDocuments(
      text,
      [&](Value v, size_t i) {
        r.docs.push_back(std::move(v));
        r.indexes.push_back(i);
        return okStatus();
      },
      limits);
  return r;
}

ReadResult readJson(std::string_view text, const ReaderLimits& limits = {}) {
  ReadResult r;
  r.status = readJsonDocuments(
      text,
      [&](Value v, size_t i) {
        r.docs.push_back(std::move(v));
        r.indexes.push_back(i);
        return okStatus();
      },
      limits);
  return r;
}

// The value of `key` in the single YAML document `text`.
Value yamlScalar(const std::string& text, const std::string& key = "v") {
  ReadResult r = readYaml(text);
  EXPECT_TRUE(r.status.ok()) << text << ": " << r.error();
  if (r.docs.size() != 1 || !r.docs[0].find(key)) {
    ADD_FAILURE() << text << ": no single document with key " << key;
    return Value::null();
  }
  return *r.docs[0].find(key);
}

bool startsWith(const std::string& s, std::string_view prefix) { return s.starts_with(prefix); }

// --- YAML: scalar resolution (YAML 1.2 core schema) -------------------------------------------

TEST(YamlReader, ResolvesPlainScalarsByTheCoreSchema) {
  struct Case {
    const char* text;
    Value::Type type;
    int64_t i = 0;
    double f = 0;
    bool b = false;
  };
  const Case cases[] = {
      {"true", Value::Type::kBool, 0, 0, true},
      {"True", Value::Type::kBool, 0, 0, true},
      {"TRUE", Value::Type::kBool, 0, 0, true},
      {"false", Value::Type::kBool, 0, 0, false},
      {"False", Value::Type::kBool, 0, 0, false},
      {"null", Value::Type::kNull},
      {"Null", Value::Type::kNull},
      {"NULL", Value::Type::kNull},
      {"~", Value::Type::kNull},
      {"", Value::Type::kNull},
      {"0", Value::Type::kInt, 0},
      {"80", Value::Type::kInt, 80},
      {"-12", Value::Type::kInt, -12},
      {"+12", Value::Type::kInt, 12},
      {"-0", Value::Type::kInt, 0},
      {"012", Value::Type::kInt, 12},  // 1.2 core: decimal (1.1 would read octal 10)
      {"9223372036854775807", Value::Type::kInt, INT64_MAX},
      {"-9223372036854775808", Value::Type::kInt, INT64_MIN},
      {"0x1F", Value::Type::kInt, 31},
      {"0xff", Value::Type::kInt, 255},
      {"0o17", Value::Type::kInt, 15},
      {"1.5", Value::Type::kFloat, 0, 1.5},
      {"-0.25", Value::Type::kFloat, 0, -0.25},
      {".5", Value::Type::kFloat, 0, 0.5},
      {"1.", Value::Type::kFloat, 0, 1.0},
      {"1e3", Value::Type::kFloat, 0, 1000.0},
      {"+.5e+3", Value::Type::kFloat, 0, 500.0},
      {"1.5E-2", Value::Type::kFloat, 0, 0.015},
      {"80.5", Value::Type::kFloat, 0, 80.5},
      // Out of int64 range: a number, which integer fields then reject.
      {"99999999999999999999", Value::Type::kFloat, 0, 1e20},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    Value v = yamlScalar(std::string("v: ") + c.text + "\n");
    ASSERT_EQ(v.type(), c.type) << v.typeName();
    if (c.type == Value::Type::kInt) {
      EXPECT_EQ(v.asInt(), c.i);
    } else if (c.type == Value::Type::kFloat) {
      EXPECT_DOUBLE_EQ(v.asFloat(), c.f);
    } else if (c.type == Value::Type::kBool) {
      EXPECT_EQ(v.asBool(), c.b);
    }
  }
}

TEST(YamlReader, ResolvesInfinityAndNan) {
  for (const char* text : {".inf", ".Inf", ".INF", "+.inf"}) {
    Value v = yamlScalar(std::string("v: ") + text);
    ASSERT_EQ(v.type(), Value::Type::kFloat) << text;
    EXPECT_TRUE(std::isinf(v.asFloat()) && v.asFloat() > 0) << text;
  }
  Value neg = yamlScalar("v: -.Inf");
  ASSERT_EQ(neg.type(), Value::Type::kFloat);
  EXPECT_TRUE(std::isinf(neg.asFloat()) && neg.asFloat() < 0);
  Value nan = yamlScalar("v: .NaN");
  ASSERT_EQ(nan.type(), Value::Type::kFloat);
  EXPECT_TRUE(std::isnan(nan.asFloat()));
}

TEST(YamlReader, LeavesEverythingElseAString) {
  // YAML 1.1's yes/no/on/off are strings in 1.2; so are forms the core schema does not list.
  for (const char* text :
       {"yes",   "no",        "on",    "off", "Y",         "n",    "1_000", "0b101",
        "0X1F",  "0x",        "0o",    "0o8", "0x-1",      "0o-7", "0x+1",  "0xFFFFFFFFFFFFFFFFF",
        "1.2.3", "10.0.0.1",  "+",     ".",   "1e",        "1e+",  "nulls", "tru",
        "~x",    ".infinity", "12abc", "TCP", "2026-11-24"}) {
    Value v = yamlScalar(std::string("v: ") + text + "\n");
    ASSERT_TRUE(v.isString()) << text << " resolved to " << v.typeName();
    EXPECT_EQ(v.asString(), text);
  }
}

TEST(YamlReader, QuotedBlockAndTaggedScalarsStayStrings) {
  struct Case {
    const char* yaml;
    const char* want;
  };
  const Case cases[] = {
      {"v: 'true'", "true"},
      {"v: \"80\"", "80"},
      {"v: \"null\"", "null"},
      {"v: ''", ""},
      {"v: \"\"", ""},
      {"v: !!str 80", "80"},
      {"v: !!str true", "true"},
      {"v: !!str", ""},
      {"v: |\n  80\n", "80\n"},
      {"v: >-\n  true\n  story\n", "true story"},
      {"v: \"caf\\u00e9 \\t\"", "caf\xc3\xa9 \t"},
  };
  for (const Case& c : cases) {
    Value v = yamlScalar(c.yaml);
    ASSERT_TRUE(v.isString()) << c.yaml << " resolved to " << v.typeName();
    EXPECT_EQ(v.asString(), c.want) << c.yaml;
  }
}

TEST(YamlReader, KeysStayTextWhateverTheyWouldResolveTo) {
  ReadResult r = readYaml("true: a\n80: b\nnull: c\n~: d\n'quoted': e\n");
  ASSERT_TRUE(r.status.ok()) << r.error();
  ASSERT_EQ(r.docs.size(), 1u);
  const Value::Object& members = r.docs[0].asObject();
  ASSERT_EQ(members.size(), 5u);
  std::vector<std::string> keys;
  for (const auto& m : members) keys.push_back(m.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"true", "80", "null", "~", "quoted"}));
  EXPECT_EQ(members[1].second.asString(), "b");
}

TEST(YamlReader, RejectsCollectionsAsKeys) {
  ReadResult r = readYaml("? [a, b]\n: c\n");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.error(), "line 1: a list or object used as a key is not supported");
}

// --- YAML: streams, lines ---------------------------------------------------------------------

TEST(YamlReader, SkipsEmptyDocumentsAndCountsThem) {
  ReadResult r = readYaml(
      "---\n"
      "---\n"
      "a: 1\n"
      "---\n"
      "# only a comment\n"
      "---\n"
      "~\n"
      "---\n"
      "b: 2\n"
      "...\n"
      "---\n"
      "- 3\n");
  ASSERT_TRUE(r.status.ok()) << r.error();
  ASSERT_EQ(r.docs.size(), 3u);
  EXPECT_EQ(r.indexes, (std::vector<size_t>{1, 4, 5}));
  EXPECT_EQ(r.docs[0].find("a")->asInt(), 1);
  EXPECT_EQ(r.docs[1].find("b")->asInt(), 2);
  ASSERT_TRUE(r.docs[2].isArray());
  EXPECT_EQ(r.docs[2].asArray()[0].asInt(), 3);
}

TEST(YamlReader, EmptyInputsHaveNoDocuments) {
  for (const char* text : {"", "   \n\n", "# nothing\n", "---\n", "---\n...\n"}) {
    ReadResult r = readYaml(text);
    EXPECT_TRUE(r.status.ok()) << text << ": " << r.error();
    EXPECT_TRUE(r.docs.empty()) << text;
  }
}

TEST(YamlReader, ScalarRootDocumentsAreHandedOver) {
  ReadResult r = readYaml("--- hello\n--- 42\n");
  ASSERT_TRUE(r.status.ok()) << r.error();
  ASSERT_EQ(r.docs.size(), 2u);
  EXPECT_EQ(r.docs[0].asString(), "hello");
  EXPECT_EQ(r.docs[1].asInt(), 42);
}

TEST(YamlReader, RecordsOneBasedSourceLinesAcrossDocuments) {
  ReadResult r = readYaml(
      "# comment\n"       // 1
      "apiVersion: v1\n"  // 2
      "spec:\n"           // 3
      "  ports:\n"        // 4
      "  - port: 80\n"    // 5
      "    name: http\n"  // 6
      "  - {port: 81}\n"  // 7
      "---\n"             // 8
      "kind: Service\n"   // 9
      "list: [a,\n"       // 10
      "  b]\n"            // 11
      "text: |\n"         // 12
      "  line one\n");    // 13
  ASSERT_TRUE(r.status.ok()) << r.error();
  ASSERT_EQ(r.docs.size(), 2u);
  const Value& d0 = r.docs[0];
  EXPECT_EQ(d0.line(), 2u);  // a block mapping starts at its first key
  EXPECT_EQ(d0.find("apiVersion")->line(), 2u);
  const Value& ports = *d0.find("spec")->find("ports");
  EXPECT_EQ(d0.find("spec")->line(), 4u);
  EXPECT_EQ(ports.line(), 5u);
  EXPECT_EQ(ports.asArray()[0].find("port")->line(), 5u);
  EXPECT_EQ(ports.asArray()[0].find("name")->line(), 6u);
  EXPECT_EQ(ports.asArray()[1].line(), 7u);
  EXPECT_EQ(ports.asArray()[1].find("port")->line(), 7u);
  const Value& d1 = r.docs[1];
  EXPECT_EQ(d1.find("kind")->line(), 9u);
  EXPECT_EQ(d1.find("list")->asArray()[1].line(), 11u);
  EXPECT_EQ(d1.find("text")->line(), 12u);
}

// --- YAML: anchors and aliases ----------------------------------------------------------------

TEST(YamlReader, ExpandsAnchorsAndAliases) {
  ReadResult r = readYaml(
      "base: &ports\n"
      "  - port: 80\n"
      "  - port: 443\n"
      "copy: *ports\n"
      "name: &n web\n"
      "again: *n\n"
      "&k app: shop\n"
      "labels:\n"
      "  *k : other\n"
      "keyAsValue: *k\n");
  ASSERT_TRUE(r.status.ok()) << r.error();
  ASSERT_EQ(r.docs.size(), 1u);
  const Value& d = r.docs[0];
  const Value& copy = *d.find("copy");
  ASSERT_TRUE(copy.isArray());
  ASSERT_EQ(copy.asArray().size(), 2u);
  EXPECT_EQ(copy.asArray()[1].find("port")->asInt(), 443);
  EXPECT_EQ(d.find("again")->asString(), "web");
  ASSERT_EQ(d.asObject().size(), 7u);
  EXPECT_EQ(d.asObject()[4].first, "app");
  ASSERT_TRUE(d.find("labels")->isObject());
  EXPECT_EQ(d.find("labels")->asObject().at(0).first, "app");  // an aliased key, used as a key
  EXPECT_EQ(d.find("labels")->find("app")->asString(), "other");
  EXPECT_EQ(d.find("keyAsValue")->asString(), "app");
}

TEST(YamlReader, SplitsAStreamAtDocumentMarkersKeepingLines) {
  std::string text = "a: 1\n---\nb: 2\nc: |\n  ---not a marker\n---   \nd: 4\n--- # c\ne: 5\n";
  auto pieces = splitYamlStream(text, 1);
  ASSERT_EQ(pieces.size(), 4u);
  EXPECT_EQ(pieces[0].first, "a: 1\n");
  EXPECT_EQ(pieces[0].second, 1u);
  EXPECT_EQ(pieces[1].first, "---\nb: 2\nc: |\n  ---not a marker\n");
  EXPECT_EQ(pieces[1].second, 2u);
  EXPECT_EQ(pieces[2].second, 6u);
  EXPECT_EQ(pieces[3].first, "--- # c\ne: 5\n");
  EXPECT_EQ(pieces[3].second, 8u);
  // The pieces read as the same documents as the whole, with the same lines.
  std::vector<std::pair<std::string, uint32_t>> whole, joined;
  auto collect = [](std::vector<std::pair<std::string, uint32_t>>& into) {
    return [&into](Value v, size_t) {
      for (const auto& [k, value] : v.asObject()) into.emplace_back(k, value.line());
      return okStatus();
    };
  };
  ASSERT_TRUE(readYamlDocuments(text, collect(whole)).ok());
  for (auto [piece, line] : pieces) {
    ASSERT_TRUE(readYamlDocuments(piece, collect(joined), {}, line).ok());
  }
  EXPECT_EQ(whole, joined);
  // Large targets keep it whole; directives keep it whole.
  EXPECT_EQ(splitYamlStream(text, 1 << 20).size(), 1u);
  EXPECT_EQ(splitYamlStream("%YAML 1.2\n---\na: 1\n---\nb: 2\n", 1).size(), 1u);
}

TEST(YamlReader, ErrorsInAPieceNameTheLineOfTheWholeFile) {
  ReadResult r;
  r.status = readYamlDocuments(
      "a: [1,\n", [](Value, size_t) { return okStatus(); }, {}, 41);
  ASSERT_FALSE(r.status.ok());
  EXPECT_TRUE(startsWith(r.error(), "line 42")) << r.error();
}

TEST(YamlReader, AppliesMergeKeysAsKubectlDoes) {
  ReadResult r = readYaml(
      "defaults: &defaults\n"
      "  protocol: TCP\n"
      "  targetPort: 8080\n"
      "extra: &extra\n"
      "  appProtocol: http\n"
      "  protocol: UDP\n"
      "ports:\n"
      "- <<: *defaults\n"
      "  name: http\n"
      "  port: 80\n"
      "- <<: [*extra, *defaults]\n"
      "  name: metrics\n"
      "  targetPort: 9090\n");
  ASSERT_TRUE(r.status.ok()) << r.error();
  const Value& ports = *r.docs.at(0).find("ports");
  const Value& http = ports.asArray().at(0);
  EXPECT_EQ(http.find("protocol")->asString(), "TCP");
  EXPECT_EQ(http.find("targetPort")->asInt(), 8080);
  EXPECT_EQ(http.find("port")->asInt(), 80);
  EXPECT_EQ(http.find("<<"), nullptr);
  const Value& metrics = ports.asArray().at(1);
  EXPECT_EQ(metrics.find("targetPort")->asInt(), 9090);    // the mapping's own key wins
  EXPECT_EQ(metrics.find("protocol")->asString(), "UDP");  // earlier merge source wins
  EXPECT_EQ(metrics.find("appProtocol")->asString(), "http");

  ReadResult bad = readYaml("a:\n  <<: 12\n  b: 1\n");
  ASSERT_FALSE(bad.status.ok());
  EXPECT_NE(bad.error().find("merge key"), std::string::npos) << bad.error();
}

TEST(YamlReader, AliasedKeyThatDuplicatesIsRejected) {
  ReadResult r = readYaml("&k app: 1\n*k : 2\n");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.error(), "line 1: duplicate key \"app\"");
}

TEST(YamlReader, UnknownAliasNamesTheLine) {
  ReadResult r = readYaml("a: 1\nb: *missing\n");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.error(), "line 2: unknown alias *missing");
  // An anchor is usable only once its node is complete: no self-reference.
  ReadResult self = readYaml("a: &x [1, *x]\n");
  EXPECT_FALSE(self.status.ok());
  EXPECT_EQ(self.error(), "line 1: unknown alias *x");
}

std::string billionLaughs(int levels) {
  std::string s = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i < levels; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    s += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) s += (j ? ", " : "") + prev;
    s += "]\n";
  }
  return s;
}

TEST(YamlReader, StopsAnAliasBombAtTheAliasLimit) {
  // Nine levels would expand to 10^9 strings; the default alias limit stops it at a million.
  ReadResult r = readYaml(billionLaughs(9));
  EXPECT_FALSE(r.status.ok());
  EXPECT_TRUE(r.docs.empty());
  EXPECT_NE(r.error().find("aliases expand to more than 1000000 values"), std::string::npos)
      << r.error();
  EXPECT_TRUE(startsWith(r.error(), "line ")) << r.error();

  // Three levels, counted after expansion against the document limit too.
  ReaderLimits limits;
  limits.maxValuesPerDocument = 1000;
  ReadResult small = readYaml(billionLaughs(3), limits);
  EXPECT_FALSE(small.status.ok());
  EXPECT_EQ(small.error(), "line 3: document has more than 1000 values");
  limits = {};
  limits.maxAliasValues = 100;
  small = readYaml(billionLaughs(3), limits);
  EXPECT_FALSE(small.status.ok());
  EXPECT_NE(small.error().find("aliases expand to more than 100 values"), std::string::npos)
      << small.error();
}

TEST(YamlReader, LargeDocumentsWithoutAliasesAreNotLimitedByTheAliasBudget) {
  // 1.5 million values of real bytes: over the alias budget, under the document limit.
  std::string s = "items:\n";
  s.reserve(10'000'000);
  for (int i = 0; i < 1'500'000; ++i) s += "- 1\n";
  ReadResult r = readYaml(s);
  ASSERT_TRUE(r.status.ok()) << r.error();
  EXPECT_EQ(r.docs.at(0).find("items")->asArray().size(), 1'500'000u);
}

TEST(YamlReader, ValueLimitIsExact) {
  // A mapping with three scalars: 4 values (the mapping counts too); aliases count expanded.
  ReaderLimits limits;
  limits.maxValuesPerDocument = 4;
  EXPECT_TRUE(readYaml("a: 1\nb: 2\nc: 3\n", limits).status.ok());
  EXPECT_FALSE(readYaml("a: 1\nb: 2\nc: 3\nd: 4\n", limits).status.ok());
  limits.maxValuesPerDocument = 7;  // a's list and 2 items, b's copy of them (3), the root
  EXPECT_TRUE(readYaml("a: &l [1, 2]\nb: *l\n", limits).status.ok());
  limits.maxValuesPerDocument = 6;  // the root mapping is one too many
  EXPECT_EQ(readYaml("a: &l [1, 2]\nb: *l\n", limits).error(),
            "line 1: document has more than 6 values");
  limits.maxValuesPerDocument = 5;  // the alias is, and is refused before it is copied
  EXPECT_EQ(readYaml("a: &l [1, 2]\nb: *l\n", limits).error(),
            "line 2: document has more than 5 values");
}

TEST(YamlReader, BoundsWhatNestedAnchorsCopy) {
  // Every anchored level keeps a copy of everything under it; without a bound this 26 kB input
  // would copy the 1000-item list 150 times.
  std::string s;
  for (int i = 0; i < 150; ++i) {
    s += "- &a" + std::to_string(i) + "\n" + std::string(2 * (i + 1), ' ');
  }
  s += "[";
  for (int i = 0; i < 1000; ++i) s += "1,";
  s += "1]\n";
  ReaderLimits limits;
  limits.maxAliasValues = 20'000;
  ReadResult r = readYaml(s, limits);
  EXPECT_FALSE(r.status.ok());
  EXPECT_NE(r.error().find("anchors hold more than 20000 values"), std::string::npos) << r.error();
  // The same shape without anchors is fine.
  std::string plain;
  for (int i = 0; i < 150; ++i) plain += "-\n" + std::string(2 * (i + 1), ' ');
  plain += "[1, 2, 3]\n";
  EXPECT_TRUE(readYaml(plain, limits).status.ok());
}

// --- YAML: depth, duplicates, malformed input --------------------------------------------------

TEST(YamlReader, LimitsNestingDepth) {
  ReadResult deep = readYaml(std::string(100'000, '['));
  EXPECT_FALSE(deep.status.ok());
  EXPECT_EQ(deep.error(), "line 1: nesting deeper than 200 levels");

  std::string balanced = std::string(100'000, '[') + std::string(100'000, ']');
  EXPECT_EQ(readYaml(balanced).error(), "line 1: nesting deeper than 200 levels");

  std::string blockDeep;
  for (int i = 0; i < 5000; ++i) blockDeep += std::string(i, ' ') + "k:\n";
  ReadResult block = readYaml(blockDeep);
  EXPECT_EQ(block.error(), "line 201: nesting deeper than 200 levels");

  ReaderLimits limits;
  limits.maxDepth = 3;
  EXPECT_TRUE(readYaml("[[[1]]]", limits).status.ok());
  EXPECT_EQ(readYaml("[[[[1]]]]", limits).error(), "line 1: nesting deeper than 3 levels");
  EXPECT_TRUE(readYaml("a:\n  b:\n    c: 1\n", limits).status.ok());
  EXPECT_EQ(readYaml("a:\n  b:\n    c:\n      d: 1\n", limits).error(),
            "line 4: nesting deeper than 3 levels");
}

TEST(YamlReader, RejectsDuplicateKeys) {
  struct Case {
    const char* yaml;
    const char* error;
  };
  const Case cases[] = {
      {"a: 1\na: 2\n", "line 1: duplicate key \"a\""},
      {"a: 1\n'a': 2\n", "line 1: duplicate key \"a\""},
      {"spec:\n  ports: []\n  type: X\n  ports: []\n", "line 2: duplicate key \"ports\""},
      {"x: {k: 1, k: 2}\n", "line 1: duplicate key \"k\""},
      {"- a: 1\n- b: 1\n  b: 2\n", "line 2: duplicate key \"b\""},
  };
  for (const Case& c : cases) {
    ReadResult r = readYaml(c.yaml);
    EXPECT_FALSE(r.status.ok()) << c.yaml;
    EXPECT_EQ(r.error(), c.error) << c.yaml;
  }
  // Large mappings take another path: check it too.
  std::string big;
  for (int i = 0; i < 40; ++i) big += "k" + std::to_string(i) + ": " + std::to_string(i) + "\n";
  EXPECT_TRUE(readYaml(big).status.ok());
  EXPECT_EQ(readYaml(big + "k17: again\n").error(), "line 1: duplicate key \"k17\"");
}

TEST(YamlReader, TruncatedDocumentsNameTheLine) {
  const std::string full =
      "apiVersion: v1\n"
      "kind: Service\n"
      "metadata:\n"
      "  name: web\n"
      "  annotations:\n"
      "    note: \"a quoted value\"\n"
      "spec:\n"
      "  ports: [{port: 80}, {port: 443}]\n";
  struct Case {
    size_t cut;  // bytes kept
    const char* error;
  };
  const Case cases[] = {
      {full.find("quoted") + 3,
       "line 6, column 17: found unexpected end of stream while scanning a quoted scalar"},
      {full.find("{port: 443") + 5,
       "line 9, column 1: did not find expected ',' or '}' while parsing a flow mapping"},
      {full.find("{port: 80") + 3,
       "line 9, column 1: did not find expected ',' or '}' while parsing a flow mapping"},
  };
  for (const Case& c : cases) {
    ReadResult r = readYaml(std::string_view(full).substr(0, c.cut));
    EXPECT_FALSE(r.status.ok()) << c.cut;
    EXPECT_EQ(r.error(), c.error) << c.cut;
  }
}

TEST(YamlReader, EveryPrefixOfAStreamReadsOrFailsCleanly) {
  const std::string full =
      "apiVersion: v1\n"
      "kind: List\n"
      "items:\n"
      "- apiVersion: v1\n"
      "  kind: Service\n"
      "  metadata: {name: web, labels: {app: web}}\n"
      "  spec:\n"
      "    ports:\n"
      "    - name: http\n"
      "      port: 80\n"
      "      targetPort: 'http'\n"
      "    selector: &sel\n"
      "      app: web\n"
      "    copy: *sel\n"
      "    text: |\n"
      "      two\n"
      "      lines\n"
      "---\n"
      "\"quoted\": [1, 2.5, ~, true]\n";
  size_t failures = 0;
  for (size_t cut = 0; cut <= full.size(); ++cut) {
    ReadResult r = readYaml(std::string_view(full).substr(0, cut));
    if (!r.status.ok()) {
      ++failures;
      EXPECT_TRUE(startsWith(r.error(), "line ")) << cut << ": " << r.error();
    }
  }
  EXPECT_GT(failures, 0u);  // some cuts must be invalid YAML, or the loop tests nothing
  ReadResult whole = readYaml(full);
  EXPECT_TRUE(whole.status.ok()) << whole.error();
  EXPECT_EQ(whole.docs.size(), 2u);
}

TEST(YamlReader, RejectsInvalidUtf8AtItsLine) {
  ReadResult r = readYaml("a: b\nc: d\ne: \xff\xfe\n");
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(r.error(), "line 3, column 4: invalid leading UTF-8 octet (byte 0xff at offset 13)");
  ReadResult overlong = readYaml("a: \xc0\xaf\n");
  EXPECT_FALSE(overlong.status.ok());
  EXPECT_TRUE(startsWith(overlong.error(), "line 1, column 4: ")) << overlong.error();
}

TEST(YamlReader, RejectsBinaryInputWithoutCrashing) {
  const std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01", 20);
  ReadResult r = readYaml(png);
  EXPECT_FALSE(r.status.ok());
  EXPECT_TRUE(startsWith(r.error(), "line 1, column 1: ")) << r.error();

  std::mt19937 rng(12345);
  size_t rejected = 0;
  for (int round = 0; round < 200; ++round) {
    std::string blob(64 + round, '\0');
    for (char& c : blob) c = static_cast<char>(rng());
    ReadResult b = readYaml(blob);
    if (!b.status.ok()) {
      ++rejected;
      EXPECT_TRUE(startsWith(b.error(), "line ")) << b.error();
    }
  }
  EXPECT_EQ(rejected, 200u);  // random bytes hold NULs and bad UTF-8 somewhere
}

TEST(YamlReader, HandlerErrorStopsTheStream) {
  int calls = 0;
  Status st = readYamlDocuments("a: 1\n---\nb: 2\n", [&](Value, size_t) -> Status {
    ++calls;
    return Error("stop here");
  });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "stop here");
  EXPECT_EQ(calls, 1);
}

// --- JSON ---------------------------------------------------------------------------------------

TEST(JsonReader, ReadsEveryValueType) {
  ReadResult r = readJson(
      R"({"n": null, "t": true, "f": false, "i": -42, "big": 9223372036854775807,
          "u": 18446744073709551615, "x": 80.5, "e": 1e3, "s": "caf\u00e9\n",
          "a": [1, "two", [3]], "o": {"k": "v"}})");
  ASSERT_TRUE(r.status.ok()) << r.error();
  ASSERT_EQ(r.docs.size(), 1u);
  const Value& d = r.docs[0];
  EXPECT_EQ(d.line(), 0u);  // JSON carries no lines
  EXPECT_TRUE(d.find("n")->isNull());
  EXPECT_TRUE(d.find("t")->asBool());
  EXPECT_FALSE(d.find("f")->asBool());
  EXPECT_EQ(d.find("i")->asInt(), -42);
  EXPECT_EQ(d.find("big")->asInt(), INT64_MAX);
  ASSERT_EQ(d.find("u")->type(), Value::Type::kFloat);  // past int64: a number
  EXPECT_DOUBLE_EQ(d.find("u")->asFloat(), 18446744073709551615.0);
  EXPECT_DOUBLE_EQ(d.find("x")->asFloat(), 80.5);
  ASSERT_EQ(d.find("e")->type(), Value::Type::kFloat);
  EXPECT_DOUBLE_EQ(d.find("e")->asFloat(), 1000.0);
  EXPECT_EQ(d.find("s")->asString(), "caf\xc3\xa9\n");
  ASSERT_EQ(d.find("a")->asArray().size(), 3u);
  EXPECT_EQ(d.find("a")->asArray()[1].asString(), "two");
  EXPECT_EQ(d.find("o")->find("k")->asString(), "v");
  // Members keep document order.
  EXPECT_EQ(d.asObject().front().first, "n");
  EXPECT_EQ(d.asObject().back().first, "o");
}

TEST(JsonReader, ReadsStreamsOfDocuments) {
  ReadResult r = readJson("{\"a\":1}\n{\"b\":2}\n\n[3]{\"c\":4}null {\"d\":5}\n");
  ASSERT_TRUE(r.status.ok()) << r.error();
  ASSERT_EQ(r.docs.size(), 5u);
  EXPECT_EQ(r.indexes, (std::vector<size_t>{0, 1, 2, 3, 5}));  // null is skipped, but counted
  EXPECT_EQ(r.docs[3].find("c")->asInt(), 4);
  EXPECT_EQ(r.docs[4].find("d")->asInt(), 5);
}

TEST(JsonReader, EmptyInputsHaveNoDocuments) {
  for (const char* text : {"", " ", "\n\t\r\n"}) {
    ReadResult r = readJson(text);
    EXPECT_TRUE(r.status.ok()) << '"' << text << "\": " << r.error();
    EXPECT_TRUE(r.docs.empty());
  }
}

TEST(JsonReader, RejectsTrailingGarbageAndTruncation) {
  struct Case {
    const char* json;
    size_t docsBefore;  // documents handed over before the error
    const char* error;
  };
  const Case cases[] = {
      {R"({"a":1} xyz)", 1,
       "JSON document 2 at byte 8: The JSON document has an improper structure: missing or "
       "superfluous commas, braces, missing keys, etc."},
      {R"({"a":1},{"b":1})", 1,
       "JSON document 2 at byte 7: The JSON document has an improper structure: missing or "
       "superfluous commas, braces, missing keys, etc."},
      {R"({"a":1} {"b":)", 1,
       "invalid JSON: the last 5 bytes (from byte 8) are not a complete document (cut short, or "
       "unbalanced brackets)"},
      {R"({"a":1}})", 0,
       "invalid JSON: the last 8 bytes (from byte 0) are not a complete document (cut short, or "
       "unbalanced brackets)"},
      {R"({"a":[1,2})", 0,
       "invalid JSON: the last 10 bytes (from byte 0) are not a complete document (cut short, or "
       "unbalanced brackets)"},
      {R"({"a": tru})", 0,
       "JSON document 1 at byte 0: Problem while parsing an atom starting with the letter 't'"},
  };
  for (const Case& c : cases) {
    ReadResult r = readJson(c.json);
    EXPECT_FALSE(r.status.ok()) << c.json;
    EXPECT_EQ(r.docs.size(), c.docsBefore) << c.json;
    EXPECT_EQ(r.error(), c.error) << c.json;
  }
}

TEST(JsonReader, EveryPrefixOfAStreamReadsOrFailsCleanly) {
  const std::string full =
      R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},)"
      R"( "spec": {"ports": [{"port": 80, "name": "h\"t"}], "x": [1.5, -2, null, true]}})"
      "\n"
      R"({"kind": "List", "items": []})";
  size_t ok = 0;
  for (size_t cut = 0; cut <= full.size(); ++cut) {
    ReadResult r = readJson(std::string_view(full).substr(0, cut));
    if (r.status.ok()) {
      ++ok;
    } else {
      EXPECT_FALSE(r.error().empty());
      EXPECT_TRUE(startsWith(r.error(), "invalid JSON") || startsWith(r.error(), "JSON document"))
          << cut << ": " << r.error();
    }
  }
  // The empty prefix, whitespace-only prefixes and the cut right after the first document.
  EXPECT_GE(ok, 3u);
  EXPECT_LT(ok, 10u);
}

TEST(JsonReader, RejectsDuplicateKeys) {
  EXPECT_EQ(readJson(R"({"a":1,"a":2})").error(), "JSON document 1: duplicate key \"a\"");
  EXPECT_EQ(readJson(R"({"ok":1} {"x":{"y":[{"k":1,"k":1}]}})").error(),
            "JSON document 2: duplicate key \"k\"");
  std::string big = "{";
  for (int i = 0; i < 40; ++i) big += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  EXPECT_TRUE(readJson(big + "\"last\":0}").status.ok());
  EXPECT_EQ(readJson(big + "\"k23\":0}").error(), "JSON document 1: duplicate key \"k23\"");
}

TEST(JsonReader, LimitsNestingDepth) {
  ReadResult open = readJson(std::string(100'000, '['));
  EXPECT_FALSE(open.status.ok());
  EXPECT_TRUE(open.docs.empty());
  ReadResult deep = readJson(std::string(100'000, '[') + std::string(100'000, ']'));
  EXPECT_EQ(deep.error(),
            "JSON document 1 at byte 0: The JSON document was too deep (too many nested objects "
            "and arrays)");
  // Deeper than the reader's limit but within simdjson's: the reader's own check.
  std::string d250 = std::string(250, '[') + std::string(250, ']');
  EXPECT_EQ(readJson(d250).error(), "JSON document 1: nesting deeper than 200 levels");
  std::string obj250;
  for (int i = 0; i < 250; ++i) obj250 += "{\"k\":";
  obj250 += "1" + std::string(250, '}');
  EXPECT_EQ(readJson(obj250).error(), "JSON document 1: nesting deeper than 200 levels");

  ReaderLimits limits;
  limits.maxDepth = 3;
  EXPECT_TRUE(readJson("[[[1]]]", limits).status.ok());
  EXPECT_EQ(readJson("[[[[1]]]]", limits).error(), "JSON document 1: nesting deeper than 3 levels");
}

TEST(JsonReader, LimitsValuesPerDocument) {
  ReaderLimits limits;
  limits.maxValuesPerDocument = 4;
  EXPECT_TRUE(readJson("[1,2,3]", limits).status.ok());  // the list and three numbers
  EXPECT_EQ(readJson("[1,2,3,4]", limits).error(),
            "JSON document 1: document has more than 4 "
            "values");
  // The limit is per document, not per stream.
  EXPECT_TRUE(readJson("[1,2,3] [1,2,3] [1,2,3]", limits).status.ok());
}

TEST(JsonReader, RejectsInvalidUtf8AndBinary) {
  EXPECT_EQ(readJson("{\"a\":\"\xff\"}").error(),
            "JSON document 1 at byte 0: The input is not valid UTF-8");
  std::mt19937 rng(777);
  for (int round = 0; round < 200; ++round) {
    std::string blob(1 + round * 3, '\0');
    for (char& c : blob) c = static_cast<char>(rng());
    blob[0] = '{';  // look like JSON to get past the first byte
    ReadResult r = readJson(blob);
    EXPECT_FALSE(r.status.ok()) << round;
  }
}

TEST(JsonReader, HandlerErrorStopsTheStream) {
  int calls = 0;
  Status st = readJsonDocuments("{\"a\":1} {\"b\":2}", [&](Value, size_t) -> Status {
    ++calls;
    return Error("stop here");
  });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "stop here");
  EXPECT_EQ(calls, 1);
}

// --- Format sniffing ----------------------------------------------------------------------------

TEST(DocumentReader, SniffsTheFormatFromTheFirstNonBlankByte) {
  struct Case {
    const char* text;
    DocumentFormat want;
  };
  const Case cases[] = {
      {"{\"a\":1}", DocumentFormat::kJson},
      {"  \n\t\r[1]", DocumentFormat::kJson},
      {"apiVersion: v1", DocumentFormat::kYaml},
      {"", DocumentFormat::kYaml},
      {"   \n", DocumentFormat::kYaml},
      {"---\n{\"a\": 1}", DocumentFormat::kYaml},
      {"# comment\n{\"a\": 1}", DocumentFormat::kYaml},
      {"\xef\xbb\xbf{\"a\": 1}", DocumentFormat::kYaml},  // a BOM: libyaml copes with it
      {"- [1]", DocumentFormat::kYaml},
  };
  for (const Case& c : cases) EXPECT_EQ(sniffFormat(c.text), c.want) << c.text;
}

TEST(DocumentReader, DispatchesOnTheSniffedFormat) {
  auto errorOf = [](std::string_view text) {
    Status st = readDocuments(text, [](Value, size_t) { return okStatus(); });
    return st.ok() ? std::string() : st.error().message();
  };
  // The same duplicate, reported in each reader's own words.
  EXPECT_EQ(errorOf("{\"a\": 1, \"a\": 2}"), "JSON document 1: duplicate key \"a\"");
  EXPECT_EQ(errorOf("a: 1\na: 2\n"), "line 1: duplicate key \"a\"");
  // YAML flow syntax that is not JSON goes to the JSON reader, and is refused there.
  EXPECT_TRUE(startsWith(errorOf("{a: 1}"), "JSON document 1")) << errorOf("{a: 1}");

  std::vector<Value> docs;
  Status st = readDocuments(" {\"kind\": \"Service\"}\n{\"kind\": \"Node\"}", [&](Value v, size_t) {
    docs.push_back(std::move(v));
    return okStatus();
  });
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[1].find("kind")->asString(), "Node");
}

}  // namespace
}  // namespace capstan::control
