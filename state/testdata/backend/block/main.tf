terraform {
  backend "s3" {
    bucket = "state"
    key    = "web/terraform.tfstate"
    region = "eu-central-1"

    assume_role {
      role_arn        = "arn:aws:iam::111111111111:role/records"
      session_name    = "trueline"
      external_id     = "ext-1"
      duration        = "1h"
      source_identity = "ops"
      tags = {
        team = "platform"
      }
    }

    endpoints {
      s3  = "http://127.0.0.1:7070"
      sts = "http://127.0.0.1:7071"
    }

    shared_credentials_files = ["~/creds", "/etc/creds"]
  }
}
