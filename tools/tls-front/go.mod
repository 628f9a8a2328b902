module fieldlab/tools/tls-front

go 1.21
