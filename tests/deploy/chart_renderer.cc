#include "tests/deploy/chart_renderer.h"

#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

namespace capstan::deploy {

namespace {

using control::Value;

// One piece of a template: literal text or the inside of an action.
struct Token {
  bool action = false;
  std::string text;  // the text, or the action's body without delimiters and trim markers
  uint32_t line = 0;
};

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

Result<std::vector<Token>> lex(std::string_view in, const std::string& name) {
  std::vector<Token> out;
  uint32_t line = 1;
  bool trimNext = false;
  size_t pos = 0;
  auto countLines = [&](std::string_view s) {
    for (char c : s) line += c == '\n';
  };
  while (pos <= in.size()) {
    size_t open = in.find("{{", pos);
    std::string_view text = in.substr(pos, open == std::string_view::npos ? in.npos : open - pos);
    const uint32_t textLine = line;
    countLines(text);
    if (trimNext) {
      while (!text.empty() && isSpace(text.front())) text.remove_prefix(1);
      trimNext = false;
    }
    if (open == std::string_view::npos) {
      out.push_back({false, std::string(text), textLine});
      break;
    }
    size_t close = in.find("}}", open + 2);
    if (close == std::string_view::npos) {
      return Error(name + ":" + std::to_string(line) + ": unclosed action");
    }
    std::string_view body = in.substr(open + 2, close - open - 2);
    // text/template: "{{- " trims the whitespace before, " -}}" the whitespace after; the
    // space beside the dash is what tells it from a negative number.
    if (body.size() >= 2 && body[0] == '-' && isSpace(body[1])) {
      while (!text.empty() && isSpace(text.back())) text.remove_suffix(1);
      body.remove_prefix(2);
    }
    if (body.size() >= 2 && body.back() == '-' && isSpace(body[body.size() - 2])) {
      trimNext = true;
      body.remove_suffix(2);
    }
    out.push_back({false, std::string(text), textLine});
    while (!body.empty() && isSpace(body.front())) body.remove_prefix(1);
    while (!body.empty() && isSpace(body.back())) body.remove_suffix(1);
    if (!(body.starts_with("/*") && body.ends_with("*/"))) {
      out.push_back({true, std::string(body), line});
    }
    countLines(in.substr(open, close + 2 - open));
    pos = close + 2;
  }
  return out;
}

struct Pipeline {
  std::string argument;  // ".Values.a", "$.Values.a", ".", "\"text\""
  bool quote = false;
};

struct Node {
  enum class Kind { kText, kPrint, kIf, kRange } kind = Kind::kText;
  std::string text;
  Pipeline pipeline;
  uint32_t line = 0;
  std::vector<Node> body;      // if: then; range: body
  std::vector<Node> elseBody;  // if only
};

Result<Pipeline> parsePipeline(std::string_view text, const std::string& where) {
  Pipeline p;
  size_t bar = text.find('|');
  if (!text.starts_with('"') && bar != std::string_view::npos) {
    std::string_view fn = text.substr(bar + 1);
    text = text.substr(0, bar);
    while (!fn.empty() && isSpace(fn.front())) fn.remove_prefix(1);
    while (!fn.empty() && isSpace(fn.back())) fn.remove_suffix(1);
    if (fn != "quote") {
      return Error(where + ": function \"" + std::string(fn) +
                   "\" is outside the template subset the tests render (only quote)");
    }
    p.quote = true;
  }
  while (!text.empty() && isSpace(text.back())) text.remove_suffix(1);
  if (text.empty() || text.find(' ') != std::string_view::npos) {
    return Error(where + ": \"" + std::string(text) +
                 "\" is outside the template subset the tests render (one argument)");
  }
  p.argument = std::string(text);
  return p;
}

// Parses tokens from `i` until one of `end` / `else` (returned in `stop`) or the end.
Result<std::vector<Node>> parseList(const std::vector<Token>& tokens, size_t& i,
                                    const std::string& name, std::string& stop) {
  std::vector<Node> out;
  while (i < tokens.size()) {
    const Token& t = tokens[i++];
    if (!t.action) {
      if (!t.text.empty()) out.push_back({Node::Kind::kText, t.text, {}, t.line, {}, {}});
      continue;
    }
    const std::string where = name + ":" + std::to_string(t.line);
    std::string_view body = t.text;
    if (body == "end" || body == "else") {
      stop = std::string(body);
      return out;
    }
    bool isIf = body.starts_with("if ");
    bool isRange = body.starts_with("range ");
    if (isIf || isRange) {
      Node node;
      node.kind = isIf ? Node::Kind::kIf : Node::Kind::kRange;
      node.line = t.line;
      auto p = parsePipeline(body.substr(isIf ? 3 : 6), where);
      if (!p.ok()) return p.error();
      node.pipeline = *p;
      std::string inner;
      auto then = parseList(tokens, i, name, inner);
      if (!then.ok()) return then.error();
      node.body = std::move(*then);
      if (inner == "else" && isIf) {
        auto otherwise = parseList(tokens, i, name, inner);
        if (!otherwise.ok()) return otherwise.error();
        node.elseBody = std::move(*otherwise);
      }
      if (inner != "end") return Error(where + ": no {{ end }} for this action");
      out.push_back(std::move(node));
      continue;
    }
    auto p = parsePipeline(body, where);
    if (!p.ok()) return p.error();
    out.push_back({Node::Kind::kPrint, {}, *p, t.line, {}, {}});
  }
  stop.clear();
  return out;
}

// A field path's value: nullopt for a key its (existing) map lacks, as Go's "no value".
Result<std::optional<Value>> evaluate(const std::string& argument, const Value& dot,
                                      const Value& root, const std::string& where) {
  if (argument.size() >= 2 && argument.front() == '"' && argument.back() == '"') {
    return std::optional<Value>(Value(argument.substr(1, argument.size() - 2)));
  }
  const Value* current = nullptr;
  std::string_view path = argument;
  if (path.starts_with("$")) {
    current = &root;
    path.remove_prefix(1);
  } else if (path.starts_with(".")) {
    current = &dot;
  } else {
    return Error(where + ": \"" + argument +
                 "\" is outside the template subset the tests render (a field path)");
  }
  if (path == ".") path = "";
  while (!path.empty()) {
    if (path.front() != '.') return Error(where + ": malformed field path \"" + argument + "\"");
    path.remove_prefix(1);
    size_t next = path.find('.');
    std::string key(path.substr(0, next));
    path = next == std::string_view::npos ? std::string_view() : path.substr(next);
    if (key.empty() || !current->isObject()) {
      return Error(where + ": nil pointer evaluating " + argument + " (no map at \"" + key + "\")");
    }
    const Value* member = current->find(key);
    if (!member) {
      if (!path.empty()) {
        return Error(where + ": nil pointer evaluating " + argument + " (no \"" + key + "\")");
      }
      return std::optional<Value>();
    }
    current = member;
  }
  return std::optional<Value>(*current);
}

bool truthy(const std::optional<Value>& v) {
  if (!v) return false;
  switch (v->type()) {
    case Value::Type::kNull:
      return false;
    case Value::Type::kBool:
      return v->asBool();
    case Value::Type::kInt:
      return v->asInt() != 0;
    case Value::Type::kFloat:
      return v->asFloat() != 0;
    case Value::Type::kString:
      return !v->asString().empty();
    case Value::Type::kArray:
      return !v->asArray().empty();
    case Value::Type::kObject:
      return !v->asObject().empty();
  }
  return false;
}

// What text/template prints for a scalar (Helm's values hold numbers as float64, printed with
// %v: integral values as integers).
Result<std::string> printed(const std::optional<Value>& v, const Pipeline& p,
                            const std::string& where) {
  std::string s;
  if (!v || v->isNull()) {
    return Error(where + ": " + p.argument + " has no value (Helm would print <no value>)");
  }
  switch (v->type()) {
    case Value::Type::kBool:
      s = v->asBool() ? "true" : "false";
      break;
    case Value::Type::kInt:
      s = std::to_string(v->asInt());
      break;
    case Value::Type::kFloat: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%g", v->asFloat());
      s = buf;
      break;
    }
    case Value::Type::kString:
      s = v->asString();
      break;
    default:
      return Error(where + ": " + p.argument + " is " + std::string(v->typeName()) +
                   ", not a scalar (toYaml is outside the subset)");
  }
  if (!p.quote) return s;
  // Sprig's quote: Go's %q.
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      q += '\\';
      q += c;
    } else if (c == '\n') {
      q += "\\n";
    } else if (c == '\t') {
      q += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      return Error(where + ": control character in a quoted value");
    } else {
      q += c;
    }
  }
  return q + "\"";
}

Status execute(const std::vector<Node>& nodes, const Value& dot, const Value& root,
               const std::string& name, std::string& out) {
  for (const Node& node : nodes) {
    const std::string where = name + ":" + std::to_string(node.line);
    if (node.kind == Node::Kind::kText) {
      out += node.text;
      continue;
    }
    auto v = evaluate(node.pipeline.argument, dot, root, where);
    if (!v.ok()) return v.error();
    if (node.kind == Node::Kind::kPrint) {
      auto s = printed(*v, node.pipeline, where);
      if (!s.ok()) return s.error();
      out += *s;
    } else if (node.kind == Node::Kind::kIf) {
      if (node.pipeline.quote) return Error(where + ": quote in an if");
      const auto& branch = truthy(*v) ? node.body : node.elseBody;
      if (Status st = execute(branch, dot, root, name, out); !st.ok()) return st;
    } else {
      if (!truthy(*v)) continue;  // range over nothing or an empty list
      if (!(*v)->isArray()) return Error(where + ": range over something other than a list");
      for (const Value& item : (*v)->asArray()) {
        if (Status st = execute(node.body, item, root, name, out); !st.ok()) return st;
      }
    }
  }
  return okStatus();
}

}  // namespace

Result<std::string> renderTemplate(std::string_view text, const ChartContext& context,
                                   const std::string& name) {
  auto tokens = lex(text, name);
  if (!tokens.ok()) return tokens.error();
  size_t i = 0;
  std::string stop;
  auto nodes = parseList(*tokens, i, name, stop);
  if (!nodes.ok()) return nodes.error();
  if (!stop.empty()) return Error(name + ": {{ " + stop + " }} without an if or range");

  Value::Object release{{"Name", Value(context.releaseName)},
                        {"Namespace", Value(context.releaseNamespace)}};
  Value::Object chart{{"Name", Value(context.chartName)},
                      {"Version", Value(context.chartVersion)},
                      {"AppVersion", Value(context.chartAppVersion)}};
  Value::Object root{{"Values", context.values},
                     {"Release", Value(std::move(release))},
                     {"Chart", Value(std::move(chart))}};
  Value rootValue(std::move(root));
  std::string out;
  if (Status st = execute(*nodes, rootValue, rootValue, name, out); !st.ok()) return st.error();
  return out;
}

}  // namespace capstan::deploy
