vpc_id     = "vpc-0123456789abcdef0"
subnet_ids = ["subnet-0aaa1111bbbb2222c", "subnet-0ddd3333eeee4444f"]
ami_id     = "ami-0123456789abcdef0"
