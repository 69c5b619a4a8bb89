# Prepares a fresh moto server for the object-storage tests: an IAM user with an access key
# allowed s3:*, the buckets named on the command line, then (with --auth) turns on moto's
# request authentication so every later request must be signed with that key.
# Prints {"id": ..., "secret": ...}.
import json
import sys
import urllib.request

import boto3

url, auth, buckets = sys.argv[1], sys.argv[2] == "--auth", sys.argv[3:]
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
s3 = boto3.client("s3", **kw)
iam.create_user(UserName="kan")
key = iam.create_access_key(UserName="kan")["AccessKey"]
iam.put_user_policy(UserName="kan", PolicyName="s3", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}))
for bucket in buckets:
    s3.create_bucket(Bucket=bucket)
if auth:
    urllib.request.urlopen(urllib.request.Request(
        url + "/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "text/plain"}))
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
