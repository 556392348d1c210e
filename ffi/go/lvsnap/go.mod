module lvsnap

go 1.19
