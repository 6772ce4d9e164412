// ChartRenderer: renders deploy/helm/capstan the way `helm template` does, for the subset of Go
// templates the chart keeps to, so the deployment tests can check the chart without Helm (which
// this machine cannot install).
//
// The subset: text with actions `{{ PIPELINE }}`, `{{- ... }}` / `{{ ... -}}` (trim the
// whitespace before / after, newlines included, as text/template does), `{{/* comment */}}`,
// `{{ if PIPELINE }} ... {{ else }} ... {{ end }}`, `{{ range PIPELINE }} ... {{ end }}` over a
// list (`.` is the element, `$` the root). A pipeline is one argument (`.Values.a.b`,
// `.Release.Name`, `.Release.Namespace`, `.Chart.Version`, `.Chart.AppVersion`, `.`, `$...`, a
// "string") optionally piped to `quote`. Anything else is an error naming the template, so the
// chart cannot drift outside what is tested.
//
// Where Helm would print `<no value>` for a missing key, or fail on a field of a missing map,
// this renderer fails: a template must not depend on either.
#pragma once

#include <string>
#include <string_view>

#include "control/value.h"
#include "model/result.h"

namespace capstan::deploy {

struct ChartContext {
  control::Value values;  // values.yaml, with any overrides applied
  std::string releaseName = "capstan";
  std::string releaseNamespace = "kube-system";
  std::string chartName;
  std::string chartVersion;
  std::string chartAppVersion;
};

// Renders one template file's text. `name` is used in errors ("daemonset.yaml:12: ...").
Result<std::string> renderTemplate(std::string_view text, const ChartContext& context,
                                   const std::string& name);

}  // namespace capstan::deploy
