import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

/** The gateway's access key in the S3 tests that sign requests themselves. */
export const KEY = {
  accessKeyId: 'AKIDAILINKGATEWAY',
  secretAccessKey: 'aWxpbmsgc2VjcmV0IGZvciB0ZXN0cyBvbmx5IQ',
};
export const REGION = 'ailink-1';

/** The AWS SDK's own signer (@smithy/signature-v4, what @aws-sdk/client-s3 signs with), for hand-made requests. */
export const sdkSigner = new SignatureV4({
  credentials: KEY,
  region: REGION,
  service: 's3',
  sha256: Hash.bind(null, 'sha256'),
  // As the S3 client: the path arrives encoded already.
  uriEscapePath: false,
});
