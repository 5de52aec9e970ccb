profile = "ops"
assume_role {
  role_arn = "arn:aws:iam::222222222222:role/from-file"
}
