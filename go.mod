module github.com/smtpbench/smtpbench

go 1.26
