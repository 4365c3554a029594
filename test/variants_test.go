package test

import (
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/jsii-runtime-go"

	streamer "github.com/streamer-dev/streamer/constructs"
	"github.com/streamer-dev/streamer/functions/config"
)

// TestCustomerKeyJWKSAndDestroy synthesizes the other branches of the props:
// a customer KMS key, JWKS tokens instead of a secret, and DESTROY removal.
func TestCustomerKeyJWKSAndDestroy(t *testing.T) {
	defer failOnPanic(t)
	stack := awscdk.NewStack(awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())}), jsii.String("Variant"), nil)
	key := awskms.NewKey(stack, jsii.String("Key"), &awskms.KeyProps{EnableKeyRotation: jsii.Bool(true)})
	c := streamer.NewStreamerConstruct(stack, jsii.String("Streamer"), &streamer.StreamerConstructProps{
		EncryptionKey: key,
		JWKSURL:       jsii.String("https://idp.example.com/.well-known/jwks.json"),
		JWTIssuer:     jsii.String("https://idp.example.com/"),
		JWTAudience:   jsii.String("streamer"),
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	if c.JWTSecret != nil {
		t.Error("JWTSecret is set with JWKSURL")
	}
	tmpl := assertions.Template_FromStack(stack, nil)
	keyRef := map[string]any{"Fn::GetAtt": []any{*stack.GetLogicalId(key.Node().DefaultChild().(awscdk.CfnElement)), "Arn"}}
	tmpl.ResourceCountIs(jsii.String("AWS::SecretsManager::Secret"), jsii.Number(0))
	tmpl.AllResourcesProperties(jsii.String("AWS::DynamoDB::Table"), map[string]any{
		"SSESpecification":          map[string]any{"SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": keyRef},
		"DeletionProtectionEnabled": false,
	})
	tmpl.AllResources(jsii.String("AWS::DynamoDB::Table"), map[string]any{"DeletionPolicy": "Delete"})
	tmpl.AllResourcesProperties(jsii.String("AWS::SQS::Queue"), map[string]any{"KmsMasterKeyId": keyRef})
	tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
		"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{
			config.EnvJWKSURL:      "https://idp.example.com/.well-known/jwks.json",
			config.EnvJWTIssuer:    "https://idp.example.com/",
			config.EnvJWTAudience:  "streamer",
			config.EnvJWTSecretARN: assertions.Match_Absent(),
		})},
	})
}
