package test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// logicalID is the CloudFormation logical ID of an L2 construct's resource.
func logicalID(s synthesized, c constructs.IConstruct) string {
	return *s.stack.GetLogicalId(c.Node().DefaultChild().(awscdk.CfnElement))
}

// resources returns the template's resources of one type, by logical ID, as
// plain JSON values.
func resources(t *testing.T, tmpl assertions.Template, typ string) map[string]map[string]any {
	t.Helper()
	found := tmpl.FindResources(jsii.String(typ), nil)
	b, err := json.Marshal(found)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// props returns a resource's Properties.
func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// render writes a CloudFormation value as a short string: Ref as <ID>,
// Fn::GetAtt as <ID.Attr>, Fn::Join concatenated.
func render(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = render(x)
		}
		return strings.Join(parts, " ")
	case map[string]any:
		if ref, ok := v["Ref"]; ok {
			return "<" + render(ref) + ">"
		}
		if ga, ok := v["Fn::GetAtt"].([]any); ok {
			return fmt.Sprintf("<%s.%s>", ga[0], ga[1])
		}
		if j, ok := v["Fn::Join"].([]any); ok {
			var sb strings.Builder
			for _, x := range j[1].([]any) {
				sb.WriteString(render(x))
			}
			return sb.String()
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// statements renders a policy document's statements as sorted
// "Effect actions -> resources" lines.
func statements(doc any) []string {
	var out []string
	for _, st := range doc.(map[string]any)["Statement"].([]any) {
		st := st.(map[string]any)
		actions := asList(st["Action"])
		sort.Strings(actions)
		var res []string
		if list, ok := st["Resource"].([]any); ok {
			for _, r := range list {
				res = append(res, render(r))
			}
		} else {
			res = []string{render(st["Resource"])}
		}
		out = append(out, fmt.Sprintf("%s %s -> %s", st["Effect"], strings.Join(actions, ","), strings.Join(res, " ")))
	}
	sort.Strings(out)
	return out
}

func asList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = x.(string)
		}
		return out
	}
	return nil
}

// policyOf returns the statements of the policy attached to the role.
func policyOf(t *testing.T, s synthesized, roleID string) []string {
	t.Helper()
	var out []string
	for _, p := range resources(t, s.template, "AWS::IAM::Policy") {
		for _, r := range props(p)["Roles"].([]any) {
			if render(r) == "<"+roleID+">" {
				out = append(out, statements(props(p)["PolicyDocument"])...)
			}
		}
	}
	sort.Strings(out)
	return out
}

// mustPanic runs f and returns the panic's message; it fails the test when f
// does not panic.
func mustPanic(t *testing.T, f func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Fatal("no panic")
		}
		msg = fmt.Sprint(r)
	}()
	f()
	return ""
}

// failOnPanic turns a panic of a failed assertions.Template check (jsii
// reports them as panics) into a failure of this test only. Use it deferred.
func failOnPanic(t *testing.T) {
	t.Helper()
	if r := recover(); r != nil {
		t.Fatalf("%v", r)
	}
}
