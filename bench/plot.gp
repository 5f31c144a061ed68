# Plots of the hand-off, pipeline and zmq throughput, from the data files that
# bench/report.py writes. usage: gnuplot -e "data='DIR'; out='DIR'" bench/plot.gp
if (!exists("data")) data = "."
if (!exists("out")) out = "."

set terminal pngcairo size 980,540 font "DejaVu Sans,11" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top right
set xtics rotate by -25 scale 0
set rmargin 16
set offsets 0, 0, graph 0.08, 0
set yrange [0:*]
set bmargin 7

# zmq first: a run of that scenario alone has no hand-off or pipeline data.
if (system("test -s '".data."/zmq.dat' && test $(wc -l < '".data."/zmq.dat') -gt 1 && echo yes") eq "yes") {
  set output out."/zmq.png"
  set title "8 MiB frames over tcp://127.0.0.1 (one process, sender and receiver threads)"
  set ylabel "GB/s (bars); sender CPU per frame, ms (labels)"
  plot data."/zmq.dat" using 2:xtic(1) notitle lc rgb "#3465a4", \
       "" using 0:2:(sprintf("%.2f ms", $3)) with labels offset 0,0.7 notitle
}

set output out."/handoff.png"
set title "Hand-off: producer acquires -> channel -> consumer drops (pool of 8, 2 threads)"
set ylabel "items handed off per second (thousands)"
plot data."/handoff.dat" using 2:xtic(1) title "8 MiB frames" lc rgb "#3465a4", \
     "" using 3 title "64 B items" lc rgb "#73d216"

set output out."/pipeline.png"
set title "Pipeline: acquire -> copy 8 MiB -> freeze -> consumer reads -> drop (pool of 8)"
set ylabel "GB/s copied (bars labelled with % of the fair ceiling, memcpy over 8 buffers)"
set style histogram clustered gap 1
plot data."/pipeline.dat" using 2:xtic(1) notitle lc rgb "#3465a4", \
     "" using 0:2:(sprintf("%.0f%%", $3)) with labels offset 0,0.7 notitle
