locals {
  x = file("${path.module}/common/x.json")
}
