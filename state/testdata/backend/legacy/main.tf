terraform {
  backend "s3" {
    bucket                  = "state"
    key                     = "web/terraform.tfstate"
    role_arn                = "arn:aws:iam::111111111111:role/records"
    session_name            = "trueline"
    external_id             = "ext-1"
    sts_endpoint            = "http://127.0.0.1:7071"
    endpoint                = "http://127.0.0.1:7070"
    shared_credentials_file = "/etc/creds"
  }
}
