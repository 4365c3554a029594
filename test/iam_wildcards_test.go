package test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
)

// starResourceAllowed lists the only actions an Allow statement may grant
// on Resource "*", each with the reason AWS requires it: the action has no
// resource-level permissions, so no narrower ARN can be written.
var starResourceAllowed = map[string]string{
	"xray:PutTraceSegments":    "X-Ray has no resource-level permissions: Lambda active tracing sends segments with Resource \"*\"",
	"xray:PutTelemetryRecords": "X-Ray has no resource-level permissions: Lambda active tracing sends telemetry with Resource \"*\"",
	"cloudwatch:PutMetricData": "CloudWatch metric data has no resource type; it can only be narrowed by the cloudwatch:namespace condition",
	"dynamodb:ListStreams":     "ListStreams has no resource type (it lists the streams of all tables); the stream event source mapping needs it",
}

// policyStatement is one statement of any policy document in the template.
type policyStatement struct {
	where     string // resource logical ID, property path and statement index
	effect    string
	actions   []string
	resources []string
	negated   string // "NotAction" or "NotResource" when the statement uses one
}

// String renders the statement for a failure message.
func (s policyStatement) String() string {
	return fmt.Sprintf("%s: %s %s -> %s", s.where, s.effect, strings.Join(s.actions, ","), strings.Join(s.resources, " "))
}

// policyStatements finds every policy document in the template's resource
// properties — identity policies, inline role policies, resource policies of
// queues, topics, keys — and returns their statements.
func policyStatements(t *testing.T, s synthesized) []policyStatement {
	t.Helper()
	var out []policyStatement
	var walk func(id, path string, v any)
	walk = func(id, path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if list, ok := v["Statement"].([]any); ok {
				for i, st := range list {
					out = append(out, parseStatement(fmt.Sprintf("%s%s[%d]", id, path, i), st.(map[string]any)))
				}
				return
			}
			for k, child := range v {
				walk(id, path+"."+k, child)
			}
		case []any:
			for i, child := range v {
				walk(id, fmt.Sprintf("%s[%d]", path, i), child)
			}
		}
	}
	all, _ := (*s.template.ToJSON())["Resources"].(map[string]any)
	if len(all) == 0 {
		t.Fatal("the template has no resources")
	}
	for id, r := range all {
		walk(id, "", props(r.(map[string]any)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].where < out[j].where })
	return out
}

// parseStatement reads a statement's effect, actions and resources.
func parseStatement(where string, st map[string]any) policyStatement {
	ps := policyStatement{where: where, effect: fmt.Sprint(st["Effect"]), actions: asList(st["Action"])}
	if na, ok := st["NotAction"]; ok {
		ps.negated, ps.actions = "NotAction", asList(na)
	}
	res, ok := st["Resource"]
	if nr, neg := st["NotResource"]; neg {
		ps.negated, res, ok = "NotResource", nr, true
	}
	if list, isList := res.([]any); isList {
		for _, r := range list {
			ps.resources = append(ps.resources, render(r))
		}
	} else if ok {
		ps.resources = []string{render(res)}
	}
	return ps
}

// wildcardAudit is what auditStatements found.
type wildcardAudit struct {
	allows, denies, star int
	used                 []string // allowlisted actions granted on Resource "*"
	problems             []string
}

// auditStatements checks policy statements: no Allow has a wildcard action,
// NotAction or NotResource, and every Allow on Resource "*" grants only
// actions of starResourceAllowed. Deny statements may be broad: they only
// take permissions away.
func auditStatements(all []policyStatement) wildcardAudit {
	var a wildcardAudit
	used := map[string]bool{}
	for _, st := range all {
		if st.effect != "Allow" {
			a.denies++
			continue
		}
		a.allows++
		if st.negated != "" {
			a.problems = append(a.problems, fmt.Sprintf("%s uses %s: it allows more than it names", st, st.negated))
		}
		for _, action := range st.actions {
			if strings.Contains(action, "*") {
				a.problems = append(a.problems, fmt.Sprintf("%s has the wildcard action %s", st, action))
			}
		}
		if !slices.Contains(st.resources, "*") {
			continue
		}
		a.star++
		for _, action := range st.actions {
			if _, ok := starResourceAllowed[action]; !ok {
				a.problems = append(a.problems, fmt.Sprintf("%s grants %s on Resource \"*\", which AWS does not require: name the resources", st, action))
				continue
			}
			used[action] = true
		}
	}
	for action := range used {
		a.used = append(a.used, action)
	}
	sort.Strings(a.used)
	return a
}

// TestAuditStatements: the audit flags a wildcard action, NotAction,
// NotResource and an unlisted action on Resource "*", and lets through
// allowlisted actions on "*", scoped statements and broad denies.
func TestAuditStatements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give policyStatement
		bad  bool
	}{
		{"scoped", policyStatement{effect: "Allow", actions: []string{"sqs:SendMessage"}, resources: []string{"<Q.Arn>"}}, false},
		{"allowlisted on *", policyStatement{effect: "Allow", actions: []string{"xray:PutTraceSegments"}, resources: []string{"*"}}, false},
		{"broad deny", policyStatement{effect: "Deny", actions: []string{"sqs:*"}, resources: []string{"*"}}, false},
		{"wildcard action", policyStatement{effect: "Allow", actions: []string{"dynamodb:*"}, resources: []string{"<T.Arn>"}}, true},
		{"unlisted action on *", policyStatement{effect: "Allow", actions: []string{"xray:PutTraceSegments", "s3:GetObject"}, resources: []string{"<B.Arn>", "*"}}, true},
		{"NotAction", policyStatement{effect: "Allow", negated: "NotAction", actions: []string{"iam:PassRole"}, resources: []string{"<R.Arn>"}}, true},
		{"NotResource", policyStatement{effect: "Allow", negated: "NotResource", actions: []string{"sqs:SendMessage"}, resources: []string{"<Q.Arn>"}}, true},
	}
	for _, tt := range tests {
		tt.give.where = tt.name
		if got := auditStatements([]policyStatement{tt.give}); (len(got.problems) > 0) != tt.bad {
			t.Errorf("%s: problems %q, want some: %v", tt.name, got.problems, tt.bad)
		}
	}
}

// TestIAMResourceWildcards: no policy statement of the synthesized stack
// allows a wildcard action (or NotAction / NotResource), and every Allow on
// Resource "*" grants only actions AWS offers no narrower resource for, each
// listed with its reason in starResourceAllowed.
func TestIAMResourceWildcards(t *testing.T) {
	defer failOnPanic(t)
	all := policyStatements(t, streamerStack(t))
	a := auditStatements(all)
	if a.allows == 0 {
		t.Fatal("no Allow statement found: the scan is broken")
	}
	for _, p := range a.problems {
		t.Error(p)
	}
	reasons := make([]string, len(a.used))
	for i, action := range a.used {
		reasons[i] = action + " (" + starResourceAllowed[action] + ")"
	}
	// A parseable summary, read by test/reliability's report.
	t.Logf("iam-wildcards: statements=%d allow=%d deny=%d star-resource=%d problems=%d", len(all), a.allows, a.denies, a.star, len(a.problems))
	t.Logf("Resource \"*\" granted only for: %s", strings.Join(reasons, "; "))
}
