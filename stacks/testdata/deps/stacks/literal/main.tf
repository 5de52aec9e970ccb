locals {
  policy = jsondecode(file("../../shared/policy.json"))
}
