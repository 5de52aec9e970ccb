package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// s3Timeout bounds each S3 call, its retries included, and each HTTP
// request in it: a bucket that stops answering must not hold a run's
// record, or the retention sweep, forever.
const s3Timeout = 30 * time.Second

// s3Writer writes records beside a state object, with the backend's
// region, endpoints, path style, identity (awsConfigFor) and encryption.
type s3Writer struct {
	client  *s3.Client
	bucket  string
	prefix  string // <state key>.trueline/
	sse     types.ServerSideEncryption
	kmsKey  string
	timeout time.Duration // of each call
	who     string        // the identity, for errors
}

// bound gives one S3 call its deadline.
func (w *s3Writer) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, w.timeout)
}

func newS3(ctx context.Context, b Backend, workspace string) (*s3Writer, error) {
	bucket, key := b.String("bucket"), b.String("key")
	if bucket == "" || key == "" {
		return nil, errors.New("s3 backend without bucket or key: set them in the backend block or backend_config")
	}
	// The state of a workspace other than default lives under the prefix.
	if workspace != "" && workspace != "default" {
		prefix := "env:"
		if v, ok := b.Config["workspace_key_prefix"].(string); ok {
			prefix = v
		}
		key = strings.Trim(prefix, "/") + "/" + workspace + "/" + key
	}
	id, err := awsConfigFor(ctx, b)
	if err != nil {
		return nil, err
	}
	endpoint := endpointOf(b, "s3", "endpoint")
	pathStyle := b.Bool("use_path_style") || b.Bool("force_path_style")
	client := s3.NewFromConfig(id.cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
	})
	w := &s3Writer{client: client, bucket: bucket, prefix: key + ".trueline/", timeout: s3Timeout, who: id.who}
	if b.Bool("encrypt") {
		w.sse = types.ServerSideEncryptionAes256
	}
	if k := b.String("kms_key_id"); k != "" {
		w.sse, w.kmsKey = types.ServerSideEncryptionAwsKms, k
	}
	return w, nil
}

func (w *s3Writer) Where() Location {
	return Location{Backend: "s3", Record: "s3://" + w.bucket + "/" + w.prefix}
}

func (w *s3Writer) put(ctx context.Context, key string, body []byte, cond func(*s3.PutObjectInput)) error {
	in := &s3.PutObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json")}
	if w.sse != "" {
		in.ServerSideEncryption = w.sse
	}
	if w.kmsKey != "" {
		in.SSEKMSKeyId = aws.String(w.kmsKey)
	}
	if cond != nil {
		cond(in)
	}
	ctx, cancel := w.bound(ctx)
	defer cancel()
	_, err := w.client.PutObject(ctx, in)
	return err
}

// get reads a whole object and its ETag.
func (w *s3Writer) get(ctx context.Context, key string) ([]byte, *string, error) {
	ctx, cancel := w.bound(ctx)
	defer cancel()
	got, err := w.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(got.Body)
	if cerr := got.Body.Close(); err == nil {
		err = cerr
	}
	return b, got.ETag, err
}

func (w *s3Writer) Write(ctx context.Context, rec Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	runKey := w.prefix + "runs/" + runName(rec)
	if err := w.put(ctx, runKey, b, nil); err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", w.bucket, runKey, w.explain(err))
	}
	// latest.json: a whole-object PUT is atomic (never torn); a conditional
	// one (If-Match on the ETag read) keeps two replicas from replacing a
	// newer record with an older one.
	latest := w.prefix + "latest.json"
	for attempt := 0; attempt < 3; attempt++ {
		cur, etag, err := w.get(ctx, latest)
		if err == nil {
			var old Record
			if json.Unmarshal(cur, &old) == nil && !newer(rec, old) {
				return nil
			}
		} else if !isNotFound(err) {
			return fmt.Errorf("read s3://%s/%s: %w", w.bucket, latest, w.explain(err))
		}
		err = w.put(ctx, latest, b, func(in *s3.PutObjectInput) {
			if etag != nil {
				in.IfMatch = etag
			} else {
				in.IfNoneMatch = aws.String("*")
			}
		})
		if err == nil {
			return nil
		}
		if isUnsupported(err) {
			// A server without conditional writes: a plain PUT is still atomic.
			if err := w.put(ctx, latest, b, nil); err != nil {
				return fmt.Errorf("write s3://%s/%s: %w", w.bucket, latest, w.explain(err))
			}
			return nil
		}
		if !isPreconditionFailed(err) {
			return fmt.Errorf("write s3://%s/%s: %w", w.bucket, latest, w.explain(err))
		}
		// Someone else wrote latest.json meanwhile: read again and compare.
	}
	return fmt.Errorf("write s3://%s/%s: it kept changing under us", w.bucket, latest)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isNotFound(err error) bool {
	var nk *types.NoSuchKey
	return errors.As(err, &nk) || apiCode(err) == "NotFound" || apiCode(err) == "NoSuchKey"
}

func isPreconditionFailed(err error) bool {
	c := apiCode(err)
	return c == "PreconditionFailed" || c == "ConditionalRequestConflict"
}

func isUnsupported(err error) bool {
	c := apiCode(err)
	return c == "NotImplemented" || c == "InvalidArgument"
}

// explain adds what to do to the errors people meet. A role that could
// not be assumed says so itself, without the S3 call around it.
func (w *s3Writer) explain(err error) error {
	var ar *assumeRoleError
	if errors.As(err, &ar) {
		return ar
	}
	switch apiCode(err) {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken":
		return fmt.Errorf("%w (check the credentials records are written with: %s)", err, w.who)
	case "AccessDenied":
		return fmt.Errorf("%w (check the credentials records are written with, %s: they need s3:GetObject, s3:PutObject, s3:ListBucket and s3:DeleteObject on s3://%s/%s*)",
			err, w.who, w.bucket, w.prefix)
	case "NoSuchBucket":
		return fmt.Errorf("%w (the backend's bucket does not exist)", err)
	}
	return err
}
