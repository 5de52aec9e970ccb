# The same module after its branch moved.
output "v" {
  value = "two"
}
