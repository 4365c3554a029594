package streamer

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
)

// AssetHashPlaceholder replaces asset hashes in snapshots.
const AssetHashPlaceholder = "[ASSET-HASH]"

// assetHash matches the 64-hex-digit SHA-256 asset hashes CDK writes into
// templates (S3 keys, asset parameters, metadata).
var assetHash = regexp.MustCompile(`[0-9a-f]{64}`)

// MaskAssetHashes replaces every asset hash in a synthesized template with
// AssetHashPlaceholder, so that a snapshot changes with the infrastructure,
// not with the Lambda code.
func MaskAssetHashes(template []byte) []byte {
	return assetHash.ReplaceAll(template, []byte(AssetHashPlaceholder))
}

// TemplateSnapshot returns the stack's CloudFormation template as indented
// JSON with sorted keys and masked asset hashes: stable input for a golden
// file. It synthesizes the stack's app.
func TemplateSnapshot(stack awscdk.Stack) ([]byte, error) {
	tmpl := assertions.Template_FromStack(stack, nil).ToJSON()
	b, err := json.MarshalIndent(tmpl, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("snapshot template: %w", err)
	}
	return append(MaskAssetHashes(b), '\n'), nil
}
