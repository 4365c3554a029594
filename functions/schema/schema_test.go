package schema

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestIndexNamesMatchTheSeed(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"Connections":   {"user-connections", "tenant-connections"},
		"Requests":      {"connection-requests", "tenant-requests", "status-time", "priority-queue"},
		"Subscriptions": {"connection-subs", "request-subs"},
	}
	for _, table := range Tables() {
		var got []string
		for _, ix := range table.Indexes {
			got = append(got, ix.Name)
		}
		if len(got) != len(want[table.ID]) {
			t.Fatalf("%s indexes = %v, want %v", table.ID, got, want[table.ID])
		}
		for i := range got {
			if got[i] != want[table.ID][i] {
				t.Errorf("%s index %d = %s, want %s", table.ID, i, got[i], want[table.ID][i])
			}
		}
		if table.TTLAttribute != AttrTTL {
			t.Errorf("%s TTL attribute = %q, want %q", table.ID, table.TTLAttribute, AttrTTL)
		}
	}
}

func TestCreateTableInput(t *testing.T) {
	t.Parallel()
	in := Requests.CreateTableInput("r")
	if got := aws.ToString(in.TableName); got != "r" {
		t.Errorf("TableName = %q", got)
	}
	defs := map[string]string{}
	for _, d := range in.AttributeDefinitions {
		defs[aws.ToString(d.AttributeName)] = string(d.AttributeType)
	}
	wantDefs := map[string]string{"RequestID": "S", "ConnectionID": "S", "TenantID": "S", "Status": "S", "CreatedAt": "N", "Priority": "N", "ProcessAfter": "N"}
	if len(defs) != len(wantDefs) {
		t.Errorf("attribute definitions = %v, want %v", defs, wantDefs)
	}
	for k, v := range wantDefs {
		if defs[k] != v {
			t.Errorf("attribute %s type = %q, want %q", k, defs[k], v)
		}
	}
	if in.StreamSpecification == nil || string(in.StreamSpecification.StreamViewType) != "NEW_AND_OLD_IMAGES" {
		t.Errorf("stream = %+v, want NEW_AND_OLD_IMAGES", in.StreamSpecification)
	}
	if Connections.CreateTableInput("c").StreamSpecification != nil {
		t.Error("connections table has a stream, want none")
	}
}
