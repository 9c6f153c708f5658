package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/minio/minio-go/v7"

	"coffer"
)

// mapErr adds the coffer sentinel that matches an S3 or transport error to its chain, keeping err
// itself in the chain:
//
//   - NoSuchKey (and a 404 on an object) wraps coffer.ErrNotFound;
//   - InvalidRange wraps coffer.ErrInvalid;
//   - throttling, request timeouts, 5xx and network failures wrap coffer.ErrUnavailable
//     (retryable);
//   - context errors, TLS and certificate failures and other S3 errors (AccessDenied,
//     NoSuchBucket…) are returned unchanged: retrying them cannot help.
func mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "NoSuchKey":
			return fmt.Errorf("%w: %w", coffer.ErrNotFound, err)
		case "InvalidRange":
			return fmt.Errorf("%w: %w", coffer.ErrInvalid, err)
		case "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return err
		case "SlowDown", "SlowDownRead", "SlowDownWrite", "Throttling", "ThrottlingException",
			"RequestLimitExceeded", "RequestThrottled", "TooManyRequests", "RequestTimeout",
			"InternalError", "ServiceUnavailable", "RequestTimeTooSkewed", "OperationAborted":
			return fmt.Errorf("%w: %w", coffer.ErrUnavailable, err)
		}
		switch s := resp.StatusCode; {
		case s == http.StatusNotFound && resp.Key != "":
			return fmt.Errorf("%w: %w", coffer.ErrNotFound, err)
		case s == http.StatusRequestedRangeNotSatisfiable:
			return fmt.Errorf("%w: %w", coffer.ErrInvalid, err)
		case s >= 500, s == http.StatusTooManyRequests, s == http.StatusRequestTimeout:
			return fmt.Errorf("%w: %w", coffer.ErrUnavailable, err)
		}
		return err
	}
	if isPermanentTransportErr(err) {
		return err
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) {
		// A DeadlineExceeded while ctx is live is a transport timeout, not the caller's deadline.
		return fmt.Errorf("%w: %w", coffer.ErrUnavailable, err)
	}
	return err
}

// isPermanentTransportErr reports TLS and certificate failures, which retrying cannot fix.
func isPermanentTransportErr(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		recordHeader     tls.RecordHeaderError
		certVerify       *tls.CertificateVerificationError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &recordHeader) || errors.As(err, &certVerify)
}

// isInvalidRange reports whether err is S3's answer to a range that starts past the end.
func isInvalidRange(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) &&
		(resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable)
}
