# a leaf module
