variable "x" {
  type = string
}

locals {
  dir = "../../shared"
  a   = file(var.x)
  b   = file("${local.dir}/x.json")
  c   = file(lower("X.JSON"))
  d   = [for f in ["a", "b"] : file("${f}.json")]
}
