terraform {
  backend "s3" {
    bucket = "state"
    key    = "web/terraform.tfstate"
    assume_role = {
      role_arn    = "arn:aws:iam::111111111111:role/records"
      external_id = "ext-1"
    }
    endpoints = {
      sts = "http://127.0.0.1:7071"
    }
  }
}
