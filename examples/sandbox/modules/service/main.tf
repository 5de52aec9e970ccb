# A service: an autoscaling group behind a load balancer with one listener.

terraform {
  required_providers {
    sandbox = { source = "trueline/sandbox" }
  }
}

variable "name" {
  type = string
}

variable "min_size" {
  type = number
}

variable "max_size" {
  type = number
}

variable "idle_timeout" {
  type    = number
  default = 60
}

data "sandbox_image" "base" {
  name = "base"
}

resource "sandbox_autoscaling_group" "this" {
  name            = var.name
  min_size        = var.min_size
  max_size        = var.max_size
  launch_template = data.sandbox_image.base.id
  tags            = { service = var.name }
}

resource "sandbox_load_balancer" "this" {
  name         = var.name
  idle_timeout = var.idle_timeout
}

resource "sandbox_lb_listener" "http" {
  load_balancer_id = sandbox_load_balancer.this.id
  port             = 80
  protocol         = "HTTP"
  target_group     = sandbox_autoscaling_group.this.name
}

output "dns_name" {
  value = sandbox_load_balancer.this.dns_name
}
