package test

import (
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestNagAwsSolutions fails on every unsuppressed AwsSolutions error.
func TestNagAwsSolutions(t *testing.T) {
	defer failOnPanic(t)
	s := streamerStack(t)
	errs := s.nag.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
	for _, e := range *errs {
		t.Errorf("%s: %v", *e.Id, e.Entry.Data)
	}
}
